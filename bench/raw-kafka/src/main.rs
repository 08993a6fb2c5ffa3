//! Baselines for `bench/run.sh`: librdkafka with nothing around it, with the
//! producer settings streamlyr uses (idempotent, acks=all, linger.ms=5).
//!
//!   raw-kafka produce-json <brokers> <topic> <rows>   # P1: the same JSON rows streamlyr writes
//!   raw-kafka json-lines <rows>                        # P1's rows on stdout, one a line (for `kcat -P`)
//!   raw-kafka passthrough <brokers> <from> <to> <n>   # P2: consume -> produce, n records
//!   raw-kafka latency <brokers> <in> <out> <rate> <seconds> <label>
//!       # P3: writes <rate> records/s into <in>, each carrying its send time,
//!       # and measures when each becomes visible in <out> (a stream copies them)
//!   raw-kafka relay <brokers> <in> <out>
//!       # P3's baseline: copies what arrives in <in> to <out> one record at a
//!       # time, as soon as it arrives (linger 0), until killed
//!
//! Each prints one line: `<case> <records> <seconds>` (timing excludes
//! building the payloads and connecting).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use rdkafka::{ClientContext, Offset, TopicPartitionList};

#[derive(Default)]
struct Counter(Arc<AtomicU64>);
impl ClientContext for Counter {}
impl ProducerContext for Counter {
    type DeliveryOpaque = ();
    fn delivery(&self, r: &DeliveryResult<'_>, _: ()) {
        if r.is_ok() {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
    }
}

fn producer(brokers: &str) -> (ThreadedProducer<Counter>, Arc<AtomicU64>) {
    let acked = Arc::new(AtomicU64::new(0));
    let p = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("linger.ms", "5")
        .set("compression.type", "none")
        .create_with_context(Counter(acked.clone()))
        .expect("producer");
    (p, acked)
}

fn send(p: &ThreadedProducer<Counter>, topic: &str, payload: &[u8], key: Option<&[u8]>) {
    let mut record = BaseRecord::<[u8], [u8]>::to(topic).payload(payload);
    if let Some(k) = key {
        record = record.key(k);
    }
    let mut record = record;
    loop {
        match p.send(record) {
            Ok(()) => return,
            Err((_, back)) => {
                record = back;
                std::thread::sleep(Duration::from_micros(200));
            }
        }
    }
}

fn wait_acked(p: &ThreadedProducer<Counter>, acked: &AtomicU64, n: u64) {
    while acked.load(Ordering::Relaxed) < n {
        let _ = p.flush(Duration::from_millis(100));
    }
}

/// The JSON streamlyr writes for bench row `i` (see bench/streamlyr.R).
fn json_row(i: u64) -> String {
    format!(
        "{{\"id\":{},\"x\":{},\"label\":\"{}\",\"flag\":{},\"at\":\"{}\"}}",
        i + 1,
        (i + 1) as f64 / 7.0,
        format!("label-{:014}", i + 1),
        (i + 1) % 2 == 0,
        "2026-01-01T00:00:00Z"
    )
}

fn micros_now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_micros() as u64
}

/// P3: a paced producer (linger 1 ms: at most 1 ms of its own delay, while
/// one request per record would not keep up with 10,000/s here) and a
/// consumer of the stream's output; latency is output visibility minus send
/// time, measured after a warm-up of 2 s. Prints p50 and p99 in ms.
fn latency(brokers: &str, input: &str, output: &str, rate: u64, seconds: u64, label: &str) {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", "raw-kafka-latency")
        .set("enable.auto.commit", "false")
        .set("fetch.wait.max.ms", "5")
        .create()
        .expect("consumer");
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(output, 0, Offset::End).unwrap();
    consumer.assign(&tpl).expect("assign");
    let (brokers, input) = (brokers.to_string(), input.to_string());
    let producing = std::thread::spawn(move || {
        let p: ThreadedProducer<Counter> = ClientConfig::new()
            .set("bootstrap.servers", &brokers)
            .set("linger.ms", "1")
            .create_with_context(Counter::default())
            .expect("producer");
        let start = Instant::now();
        let total = rate * seconds;
        for i in 0..total {
            let due = start + Duration::from_nanos(i * 1_000_000_000 / rate);
            let now = Instant::now();
            if due > now {
                std::thread::sleep(due - now);
            }
            let payload = format!("{:<100}", micros_now());
            send(&p, &input, payload.as_bytes(), None);
        }
        let _ = p.flush(Duration::from_secs(10));
    });
    let warm_up = micros_now() + 2_000_000;
    let deadline = Instant::now() + Duration::from_secs(seconds + 10);
    let mut latencies_us = Vec::new();
    // LATENCY_DUMP=<file>: one line per record, `sent_us seen_us output_create_time_ms`.
    let mut dump = std::env::var("LATENCY_DUMP").ok().filter(|f| !f.is_empty()).map(|f| std::io::BufWriter::new(std::fs::File::create(f).expect("dump file")));
    while Instant::now() < deadline {
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(50)) {
            let seen = micros_now();
            let sent: u64 = std::str::from_utf8(m.payload().unwrap_or_default()).ok().and_then(|s| s.trim().parse().ok()).unwrap_or(0);
            if sent >= warm_up {
                latencies_us.push(seen.saturating_sub(sent));
                if let Some(d) = dump.as_mut() {
                    use std::io::Write;
                    let created_ms = m.timestamp().to_millis().unwrap_or(0);
                    let _ = writeln!(d, "{sent} {seen} {created_ms}");
                }
            }
        }
        if producing.is_finished() && latencies_us.len() as u64 >= rate * seconds.saturating_sub(3) {
            break;
        }
    }
    producing.join().unwrap();
    latencies_us.sort_unstable();
    let pick = |q: f64| latencies_us.get(((latencies_us.len() as f64 - 1.0) * q) as usize).map_or(f64::NAN, |v| *v as f64 / 1000.0);
    println!("latency-{label} {} {:.2} {:.2}", latencies_us.len(), pick(0.5), pick(0.99));
}

/// P3's baseline for the continuous trigger: the least a process between
/// two topics can do. Consumer and producer as streamlyr's continuous
/// stream sets them (fetch backoff 10 ms; idempotent, acks=all, linger 0),
/// no checkpoint. Prints `ready` once it reads from the end of `input`.
fn relay(brokers: &str, input: &str, output: &str) {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", "raw-kafka-relay")
        .set("enable.auto.commit", "false")
        .set("fetch.queue.backoff.ms", "10")
        .create()
        .expect("consumer");
    consumer.fetch_metadata(Some(input), Duration::from_secs(10)).expect("metadata");
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(input, 0, Offset::End).unwrap();
    consumer.assign(&tpl).expect("assign");
    let p: ThreadedProducer<Counter> = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("linger.ms", "0")
        .set("compression.type", "none")
        .create_with_context(Counter::default())
        .expect("producer");
    p.client().fetch_metadata(Some(output), Duration::from_secs(10)).expect("metadata");
    println!("ready");
    loop {
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(100)) {
            send(&p, output, m.payload().unwrap_or_default(), m.key());
        }
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("produce-json") => {
            let (brokers, topic, rows) = (&args[2], &args[3], args[4].parse::<u64>().unwrap());
            let payloads: Vec<String> = (0..rows).map(json_row).collect();
            let (p, acked) = producer(brokers);
            p.client().fetch_metadata(Some(topic), Duration::from_secs(10)).expect("metadata");
            let t = Instant::now();
            for payload in &payloads {
                send(&p, topic, payload.as_bytes(), None);
            }
            wait_acked(&p, &acked, rows);
            println!("produce-json {rows} {:.4}", t.elapsed().as_secs_f64());
        }
        Some("json-lines") => {
            use std::io::Write;
            let rows = args[2].parse::<u64>().unwrap();
            let mut out = std::io::BufWriter::new(std::io::stdout().lock());
            for i in 0..rows {
                writeln!(out, "{}", json_row(i)).expect("stdout");
            }
        }
        Some("passthrough") => {
            let (brokers, from, to, n) = (&args[2], &args[3], &args[4], args[5].parse::<u64>().unwrap());
            let consumer: BaseConsumer = ClientConfig::new()
                .set("bootstrap.servers", brokers)
                .set("group.id", "raw-kafka-bench")
                .set("enable.auto.commit", "false")
                // As streamlyr's source: librdkafka's default (1 s) stalls a
                // consumer whose queue fills while it produces.
                .set("fetch.queue.backoff.ms", "10")
                .create()
                .expect("consumer");
            let md = consumer.fetch_metadata(Some(from), Duration::from_secs(10)).expect("metadata");
            let mut tpl = TopicPartitionList::new();
            for t in md.topics() {
                for part in t.partitions() {
                    tpl.add_partition_offset(from, part.id(), Offset::Beginning).unwrap();
                }
            }
            consumer.assign(&tpl).expect("assign");
            let (p, acked) = producer(brokers);
            p.client().fetch_metadata(Some(to), Duration::from_secs(10)).expect("metadata");
            let t = Instant::now();
            let mut seen = 0u64;
            while seen < n {
                if let Some(Ok(m)) = consumer.poll(Duration::from_millis(100)) {
                    send(&p, to, m.payload().unwrap_or_default(), m.key());
                    seen += 1;
                }
            }
            wait_acked(&p, &acked, n);
            println!("passthrough {n} {:.4}", t.elapsed().as_secs_f64());
        }
        Some("relay") => relay(&args[2], &args[3], &args[4]),
        Some("latency") => {
            let (brokers, input, output) = (&args[2], &args[3], &args[4]);
            let rate: u64 = args[5].parse().unwrap();
            let seconds: u64 = args[6].parse().unwrap();
            let label = &args[7];
            latency(brokers, input, output, rate, seconds, label);
        }
        _ => {
            eprintln!("usage: raw-kafka produce-json <brokers> <topic> <rows> | json-lines <rows> | passthrough <brokers> <from> <to> <n> | latency <brokers> <in> <out> <rate> <seconds> <label> | relay <brokers> <in> <out>");
            std::process::exit(2);
        }
    }
}
