//! librdkafka's in-process mock cluster, offered to R users as a zero-setup
//! Kafka for their tests. It speaks the real protocol on loopback ports, so
//! any client (kcat too) can talk to it. Closed when garbage-collected.

use extendr_api::prelude::*;
use rdkafka::mocking::MockCluster;
use rdkafka::producer::DefaultProducerContext;

use super::{err, ok};
use crate::error::Error;

pub type MockPtr = ExternalPtr<Option<MockCluster<'static, DefaultProducerContext>>>;

fn cluster(ptr: &MockPtr) -> std::result::Result<&MockCluster<'static, DefaultProducerContext>, Error> {
    let inner: &Option<MockCluster<'static, DefaultProducerContext>> = ptr;
    inner.as_ref().ok_or_else(|| Error::config("cluster", "the mock cluster is closed"))
}

fn reply(result: std::result::Result<(), Error>) -> Robj {
    match result {
        Ok(()) => ok(true),
        Err(e) => err(e),
    }
}

#[extendr]
fn mock_cluster_new(brokers: i32) -> Robj {
    match MockCluster::new(brokers) {
        Ok(c) => {
            let servers = c.bootstrap_servers();
            list!(ok = MockPtr::new(Some(c)), bootstrap_servers = servers).into()
        }
        Err(e) => err(Error::kafka(format!("can't start the mock cluster: {e}"))),
    }
}

#[extendr]
fn mock_cluster_close(mut ptr: MockPtr) {
    // Dropping it stops its brokers.
    *ptr = None;
}

#[extendr]
fn mock_cluster_broker(ptr: MockPtr, broker: i32, up: bool) -> Robj {
    reply(cluster(&ptr).and_then(|c| {
        let r = if up { c.broker_up(broker) } else { c.broker_down(broker) };
        r.map_err(|e| Error::config("broker", format!("can't change broker {broker}: {e}")))
    }))
}

#[extendr]
fn mock_cluster_create_topic(ptr: MockPtr, topic: &str, partitions: i32, replication: i32) -> Robj {
    reply(cluster(&ptr).and_then(|c| {
        c.create_topic(topic, partitions, replication)
            .map_err(|e| Error::config("topic", format!("can't create topic `{topic}`: {e}")))
    }))
}

extendr_module! {
    mod mock;
    fn mock_cluster_new;
    fn mock_cluster_close;
    fn mock_cluster_broker;
    fn mock_cluster_create_topic;
}
