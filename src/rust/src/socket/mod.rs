//! Lines from a TCP server as a stream (Spark's socket source, for tests
//! and demos: `nc -lk 9999`).
//!
//! The runtime model: the query connects when it starts (as Spark's
//! source; defining the stream needs no server). A reader thread appends
//! each line, with its arrival time, to a buffer; a batch is the lines
//! received since the last one, and its position is the count of lines
//! received so far. Lines are dropped from the buffer once their batch has
//! committed. When the server closes the connection the stream keeps
//! running with nothing new, and says so in its status (Spark's warning).
//!
//! As in Spark, nothing survives a restart: a new connection starts a new
//! count from where the checkpoint left off, and the lines of a batch that
//! was in flight at a crash are gone (a warning in the status says how
//! many; the batch is committed empty).

use std::collections::VecDeque;
use std::io::{BufRead, BufReader};
use std::net::{Shutdown, TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use arrow::array::{ArrayRef, StringArray, TimestampMicrosecondArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::record_batch::RecordBatch;

use crate::engine::status::SharedStatus;
use crate::engine::stop::StopSignal;
use crate::error::{Error, Result};
use crate::file::schema::{timestamp, UTC};
use crate::kafka::config::Options;
use crate::source::{Positions, Source, CHUNK_ROWS};

const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct SocketOptions {
    pub host: String,
    pub port: u16,
    pub include_timestamp: bool,
    pub ignored: Vec<String>,
}

impl SocketOptions {
    /// Spark's options and messages.
    pub fn parse(options: &Options) -> Result<Self> {
        let host = options
            .get("host")
            .filter(|h| !h.trim().is_empty())
            .ok_or_else(|| Error::option("host", r#"Set a host to read from with option("host", ...)."#))?;
        let port = options.get("port").ok_or_else(|| Error::option("port", r#"Set a port to read from with option("port", ...)."#))?;
        let port = port
            .trim()
            .parse::<u16>()
            .map_err(|_| Error::option("port", format!("`port` must be a port number (1 to 65535), not \"{port}\"")))?;
        let include_timestamp = match options.get("includeTimestamp").map(|s| s.trim().to_ascii_lowercase()) {
            None => false,
            Some(s) if s == "true" => true,
            Some(s) if s == "false" => false,
            Some(_) => return Err(Error::option("includeTimestamp", r#"includeTimestamp must be set to either "true" or "false""#)),
        };
        let mut ignored = Vec::new();
        for key in options.keys() {
            match key.as_str() {
                "host" | "port" | "includeTimestamp" => {}
                "numPartitions" => ignored.push(key.clone()),
                other => return Err(Error::option(other, format!("`{other}` is not an option of the socket source"))),
            }
        }
        Ok(SocketOptions { host: host.trim().to_string(), port, include_timestamp, ignored })
    }
}

pub(crate) fn socket_schema(include_timestamp: bool) -> SchemaRef {
    let mut fields = vec![Field::new("value", DataType::Utf8, true)];
    if include_timestamp {
        fields.push(Field::new("timestamp", timestamp(), true));
    }
    Arc::new(Schema::new(fields))
}

/// Lines received and not yet committed; `first` is the number of the first.
#[derive(Default)]
struct Received {
    lines: VecDeque<(String, i64)>,
    first: u64,
    closed: bool,
}

impl Received {
    fn end(&self) -> u64 {
        self.first + self.lines.len() as u64
    }
}

type Buffer = Arc<(Mutex<Received>, Condvar)>;

pub(crate) struct SocketSource {
    options: SocketOptions,
    schema: SchemaRef,
    buffer: Buffer,
    connection: Option<TcpStream>,
    /// Set before the query closes the connection itself: no warning then.
    closing: Arc<AtomicBool>,
    status: Option<SharedStatus>,
    /// The checkpoint's count is where this connection's count starts.
    rebased: bool,
}

impl SocketSource {
    pub fn new(options: SocketOptions) -> Self {
        let schema = socket_schema(options.include_timestamp);
        SocketSource {
            options,
            schema,
            buffer: Arc::default(),
            connection: None,
            closing: Arc::default(),
            status: None,
            rebased: false,
        }
    }

    fn received(&self) -> std::sync::MutexGuard<'_, Received> {
        self.buffer.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn lines_of(p: &Positions) -> Result<u64> {
        match p {
            Positions::Rows { rows } => Ok(*rows),
            other => Err(Error::checkpoint(format!("the checkpoint's position {other:?} is not a socket source's"))),
        }
    }
}

fn now_us() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_micros() as i64)
}

impl Source for SocketSource {
    fn describe(&self) -> String {
        format!("socket {}:{}", self.options.host, self.options.port)
    }

    fn identity(&self) -> String {
        format!("socket[{}:{}; includeTimestamp={}]", self.options.host, self.options.port, self.options.include_timestamp)
    }

    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn connect(&mut self, status: &SharedStatus) -> Result<()> {
        let target = format!("{}:{}", self.options.host, self.options.port);
        let addresses: Vec<_> = target
            .to_socket_addrs()
            .map_err(|e| Error::option("host", format!("can't resolve `{target}`: {e}")))?
            .collect();
        let mut last = None;
        let stream = addresses.iter().find_map(|a| match TcpStream::connect_timeout(a, CONNECT_TIMEOUT) {
            Ok(s) => Some(s),
            Err(e) => {
                last = Some(e);
                None
            }
        });
        let stream = stream.ok_or_else(|| {
            let why = last.map_or("no address".to_string(), |e| e.to_string());
            Error::option("host", format!("can't connect to {target}: {why}")).with_hint("start the server first (e.g. `nc -lk <port>`)")
        })?;
        let reader = stream.try_clone().map_err(|e| Error::execution(format!("socket {target}: {e}")))?;
        self.connection = Some(stream);
        status.warn("The socket source should not be used for production applications! It does not support recovery.");
        self.status = Some(status.clone());
        let (buffer, status, closing) = (self.buffer.clone(), status.clone(), self.closing.clone());
        std::thread::Builder::new()
            .name("streamlyr-socket".into())
            .spawn(move || {
                let mut reader = BufReader::new(reader);
                let mut line = Vec::new();
                loop {
                    line.clear();
                    match reader.read_until(b'\n', &mut line) {
                        Ok(0) | Err(_) => break,
                        Ok(_) => {
                            while line.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
                                line.pop();
                            }
                            let text = String::from_utf8_lossy(&line).into_owned();
                            let (lock, wake) = &*buffer;
                            lock.lock().unwrap_or_else(|p| p.into_inner()).lines.push_back((text, now_us()));
                            wake.notify_all();
                        }
                    }
                }
                let (lock, wake) = &*buffer;
                lock.lock().unwrap_or_else(|p| p.into_inner()).closed = true;
                wake.notify_all();
                if !closing.load(Ordering::SeqCst) {
                    status.warn(format!("Stream closed by {target}"));
                }
            })
            .map_err(|e| Error::internal(format!("can't start the socket reader: {e}")))?;
        Ok(())
    }

    fn initial_positions(&mut self) -> Result<Positions> {
        Ok(Positions::Rows { rows: 0 })
    }

    fn plan(&mut self, start: &Positions) -> Result<Option<(Positions, Positions)>> {
        let from = Self::lines_of(start)?;
        let rebase = !std::mem::replace(&mut self.rebased, true);
        let mut received = self.received();
        if rebase {
            // This connection's first line follows what the checkpoint counted.
            received.first = from;
        }
        let end = received.end();
        Ok((end > from).then(|| (start.clone(), Positions::Rows { rows: end })))
    }

    fn read(
        &mut self,
        start: &Positions,
        end: &Positions,
        stop: &StopSignal,
        emit: &mut dyn FnMut(RecordBatch) -> Result<()>,
    ) -> Result<()> {
        let (from, to) = (Self::lines_of(start)?, Self::lines_of(end)?);
        let rows: Vec<(String, i64)> = {
            let received = self.received();
            if !self.rebased || from < received.first || to > received.end() {
                // A batch planned before a restart: its lines went with the old connection.
                if let Some(status) = &self.status {
                    status.warn(format!(
                        "the {} lines of the batch in flight when the stream last stopped are lost: the socket source does not support recovery",
                        to.saturating_sub(from)
                    ));
                }
                return Ok(());
            }
            let skip = (from - received.first) as usize;
            received.lines.iter().skip(skip).take((to - from) as usize).cloned().collect()
        };
        for chunk in rows.chunks(CHUNK_ROWS) {
            stop.check_abort()?;
            let values: ArrayRef = Arc::new(StringArray::from_iter_values(chunk.iter().map(|(l, _)| l.as_str())));
            let mut columns = vec![values];
            if self.options.include_timestamp {
                let at = TimestampMicrosecondArray::from_iter_values(chunk.iter().map(|(_, t)| *t)).with_timezone(UTC);
                columns.push(Arc::new(at));
            }
            emit(RecordBatch::try_new(self.schema.clone(), columns)?)?;
        }
        Ok(())
    }

    fn wait_for_data(&mut self, timeout: Duration, stop: &StopSignal) -> Result<()> {
        let (lock, wake) = &*self.buffer;
        let received = lock.lock().unwrap_or_else(|p| p.into_inner());
        let seen = received.end();
        let step = timeout.min(Duration::from_millis(50));
        let deadline = std::time::Instant::now() + timeout;
        let mut received = received;
        while received.end() == seen && !received.closed && !stop.is_set() && std::time::Instant::now() < deadline {
            received = wake.wait_timeout(received, step).unwrap_or_else(|p| p.into_inner()).0;
        }
        drop(received);
        if self.received().closed {
            stop.wait(timeout); // nothing will come: wait as an idle source does
        }
        Ok(())
    }

    fn committed(&mut self, end: &Positions, _status: &SharedStatus) {
        let Ok(to) = Self::lines_of(end) else { return };
        let mut received = self.received();
        while received.first < to && !received.lines.is_empty() {
            received.lines.pop_front();
            received.first += 1;
        }
    }
}

impl Drop for SocketSource {
    fn drop(&mut self) {
        // Ends the reader thread's blocking read.
        if let Some(c) = &self.connection {
            self.closing.store(true, Ordering::SeqCst);
            let _ = c.shutdown(Shutdown::Both);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::net::TcpListener;

    use crate::kafka::config::options_of as options;

    #[test]
    fn spark_messages_for_missing_or_bad_options() {
        let e = SocketOptions::parse(&options(&[("port", "1")])).unwrap_err();
        assert_eq!((e.message.as_str(), e.option.as_deref()), (r#"Set a host to read from with option("host", ...)."#, Some("host")));
        let e = SocketOptions::parse(&options(&[("host", "h")])).unwrap_err();
        assert_eq!(e.message, r#"Set a port to read from with option("port", ...)."#);
        let e = SocketOptions::parse(&options(&[("host", "h"), ("port", "1"), ("includeTimestamp", "yes")])).unwrap_err();
        assert_eq!(e.message, r#"includeTimestamp must be set to either "true" or "false""#);
        let o = SocketOptions::parse(&options(&[("host", "h"), ("port", "9999"), ("numPartitions", "2")])).unwrap();
        assert_eq!((o.port, o.ignored.as_slice()), (9999, ["numPartitions".to_string()].as_slice()));
    }

    #[test]
    fn lines_become_rows_batch_by_batch_and_a_closed_server_is_a_warning() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port().to_string();
        let opts = SocketOptions::parse(&options(&[("host", "127.0.0.1"), ("port", &port), ("includeTimestamp", "true")])).unwrap();
        let mut source = SocketSource::new(opts);
        let status = SharedStatus::default();
        let server = std::thread::spawn(move || {
            let (mut client, _) = listener.accept().unwrap();
            client.write_all(b"one\r\ntwo\n").unwrap();
            client
        });
        source.connect(&status).unwrap();
        let mut client = server.join().unwrap();
        let stop = StopSignal::default();
        let mut at = source.initial_positions().unwrap();
        let mut rows = Vec::new();
        let take = |source: &mut SocketSource, at: &mut Positions, rows: &mut Vec<String>| {
            source.wait_for_data(Duration::from_secs(5), &stop).unwrap();
            if let Some((s, e)) = source.plan(at).unwrap() {
                source
                    .read(&s, &e, &stop, &mut |b| {
                        assert_eq!(b.num_columns(), 2);
                        let v = b.column(0).as_any().downcast_ref::<StringArray>().unwrap();
                        rows.extend(v.iter().map(|s| s.unwrap().to_string()));
                        Ok(())
                    })
                    .unwrap();
                source.committed(&e, &status);
                *at = e;
            }
        };
        while rows.len() < 2 {
            take(&mut source, &mut at, &mut rows);
        }
        client.write_all("trois\n".as_bytes()).unwrap();
        drop(client);
        while rows.len() < 3 {
            take(&mut source, &mut at, &mut rows);
        }
        assert_eq!(rows, ["one", "two", "trois"]);
        assert_eq!(at, Positions::Rows { rows: 3 });
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while !status.snapshot().warnings.iter().any(|w| w.starts_with("Stream closed by 127.0.0.1")) {
            assert!(std::time::Instant::now() < deadline, "no warning of the closed connection");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}
