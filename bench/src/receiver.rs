//! Webhook receivers on `127.0.0.1:0`: a fast one that only answers 200 (the throughput
//! target, shared with the raw HTTP load tool), and a recording one for the pipeline that
//! notes when each (event, webhook) first arrived and fails a fixed share of first attempts.
//!
//! Plain HTTP/1.1 with keep-alive, one thread per connection: enough for a few dozen
//! connections, and no HTTP server crate (whose features would make the release build of
//! this package recompile the functions' dependencies).

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Result;

/// Serves `handler(path, body) -> status` on every connection `listener` accepts, until the
/// process ends. Bodies must come with a `content-length` (reqwest and wrk send one).
pub fn serve<H>(listener: TcpListener, handler: H)
where
    H: Fn(&str, &[u8]) -> u16 + Send + Sync + 'static,
{
    let handler = Arc::new(handler);
    for stream in listener.incoming().flatten() {
        let handler = Arc::clone(&handler);
        std::thread::spawn(move || {
            let _ = connection(stream, handler.as_ref());
        });
    }
}

fn connection<H: Fn(&str, &[u8]) -> u16>(stream: TcpStream, handler: &H) -> std::io::Result<()> {
    stream.set_nodelay(true)?;
    let mut writer = stream.try_clone()?;
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    loop {
        line.clear();
        if reader.read_line(&mut line)? == 0 {
            return Ok(());
        }
        let path = line.split_whitespace().nth(1).unwrap_or("/").to_owned();
        let (mut length, mut close) = (0usize, false);
        loop {
            line.clear();
            if reader.read_line(&mut line)? == 0 {
                return Ok(());
            }
            let header = line.trim_end();
            if header.is_empty() {
                break;
            }
            if let Some((name, value)) = header.split_once(':') {
                let value = value.trim();
                if name.eq_ignore_ascii_case("content-length") {
                    length = value.parse().unwrap_or(0);
                } else if name.eq_ignore_ascii_case("connection") && value.eq_ignore_ascii_case("close") {
                    close = true;
                }
            }
        }
        let mut body = vec![0u8; length];
        reader.read_exact(&mut body)?;
        let status = handler(&path, &body);
        let reason = if status < 300 { "OK" } else { "Internal Server Error" };
        writer.write_all(format!("HTTP/1.1 {status} {reason}\r\ncontent-length: 0\r\n\r\n").as_bytes())?;
        if close {
            return Ok(());
        }
    }
}

/// Answers 200 to everything.
pub fn serve_fast(listener: TcpListener) {
    serve(listener, |_, _| 200);
}

/// How long `/hang/{n}` takes to answer: longer than any delivery timeout (at most 20 s).
pub const HANG: Duration = Duration::from_secs(600);
/// How long `/slow/{n}` takes to answer 200.
pub const SLOW: Duration = Duration::from_secs(2);
/// `/slow/{n}`'s arrivals are recorded as webhook `SLOW_WEBHOOKS + n`.
pub const SLOW_WEBHOOKS: u32 = 1000;

/// When one (event, webhook) pair reached the receiver.
#[derive(Debug, Clone, Copy)]
pub struct Arrival {
    pub first: Instant,
    pub requests: u32,
    pub succeeded: bool,
}

/// Records arrivals at `/e2e/{webhook index}`, keyed by the body's `event_id`; `/slow/{n}`
/// answers after [`SLOW`] (recorded as webhook `SLOW_WEBHOOKS + n`), `/hang/{n}` never in time.
#[derive(Debug, Clone, Default)]
pub struct RecordingReceiver {
    arrivals: Arc<Mutex<HashMap<(String, u32), Arrival>>>,
    /// One in this many (event, webhook) pairs of the events whose id starts with one of
    /// `fail_prefixes` answers 500 to its first attempt.
    fail_one_in: Option<u64>,
    /// (prefix of the event ids, webhooks each of those events fans out to).
    fail_prefixes: &'static [(&'static str, u64)],
}

impl RecordingReceiver {
    /// A receiver that fails the first attempt of one (event, webhook) pair in `fail_one_in`
    /// among the events whose id starts with one of `fail_prefixes` (chosen by the event's
    /// sequence number, the suffix of its id after the last `-`, and the prefix's fan-out).
    pub fn new(fail_one_in: Option<u64>, fail_prefixes: &'static [(&'static str, u64)]) -> Self {
        Self { arrivals: Arc::default(), fail_one_in, fail_prefixes }
    }

    /// Starts serving on a thread of its own; returns the base URL (`http://127.0.0.1:<port>`).
    pub fn start(&self) -> Result<String> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let url = format!("http://{}", listener.local_addr()?);
        let receiver = self.clone();
        std::thread::spawn(move || serve(listener, move |path, body| receiver.record(path, body)));
        Ok(url)
    }

    pub fn arrivals(&self) -> HashMap<(String, u32), Arrival> {
        self.arrivals.lock().map(|a| a.clone()).unwrap_or_default()
    }

    /// Pairs that arrived at least once and were answered 2xx at last.
    pub fn delivered(&self) -> usize {
        self.arrivals.lock().map(|a| a.values().filter(|x| x.succeeded).count()).unwrap_or_default()
    }

    fn record(&self, path: &str, body: &[u8]) -> u16 {
        if path.starts_with("/hang/") {
            // Never answers within any delivery timeout; the connection's thread just waits.
            std::thread::sleep(HANG);
            return 200;
        }
        let webhook = if let Some(slow) = path.strip_prefix("/slow/") {
            std::thread::sleep(SLOW);
            slow.parse::<u32>().ok().map(|w| SLOW_WEBHOOKS + w)
        } else {
            path.strip_prefix("/e2e/").and_then(|w| w.parse::<u32>().ok())
        };
        let now = Instant::now();
        let Some(webhook) = webhook else { return 404 };
        let event_id = serde_json::from_slice::<serde_json::Value>(body)
            .ok()
            .and_then(|v| v["event_id"].as_str().map(str::to_owned))
            .unwrap_or_default();
        let fail_first = self.fails_first_attempt(&event_id, webhook);
        let Ok(mut arrivals) = self.arrivals.lock() else { return 500 };
        let arrival =
            arrivals.entry((event_id, webhook)).or_insert(Arrival { first: now, requests: 0, succeeded: false });
        arrival.requests += 1;
        if fail_first && arrival.requests == 1 {
            return 500;
        }
        arrival.succeeded = true;
        200
    }

    fn fails_first_attempt(&self, event_id: &str, webhook: u32) -> bool {
        let Some(n) = self.fail_one_in else { return false };
        let Some((_, fan_out)) = self.fail_prefixes.iter().find(|(p, _)| event_id.starts_with(p)) else { return false };
        let sequence: u64 = event_id.rsplit('-').next().and_then(|s| s.parse().ok()).unwrap_or(1);
        // Pair k = sequence * fan-out + webhook of the run fails when k = 7 mod n.
        (sequence * fan_out + u64::from(webhook)) % n == 7 % n
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fails_exactly_the_given_share_of_first_attempts() {
        // GIVEN a receiver failing one pair in 50
        let r = RecordingReceiver::new(Some(50), &[("run-", 10), ("one-", 1)]);
        // WHEN 1000 events with 10 webhooks each arrive
        let failing = (0..1000u64)
            .flat_map(|i| (0..10u32).map(move |j| (format!("run-{i}"), j)))
            .filter(|(e, j)| r.fails_first_attempt(e, *j))
            .count();
        // THEN 2 % of the pairs fail their first attempt, and only pairs of the run
        assert_eq!(failing, 200);
        assert!(!r.fails_first_attempt("warm-7", 0));
        assert!(!RecordingReceiver::new(None, &[("run-", 10)]).fails_first_attempt("run-7", 0));
        // AND 2 % of the pairs of events fanning out to one webhook
        assert_eq!((0..1000u64).filter(|i| r.fails_first_attempt(&format!("one-{i}"), 0)).count(), 20);
    }

    #[test]
    fn answers_over_kept_alive_connections_and_records_first_arrivals() {
        // GIVEN a recording receiver
        let r = RecordingReceiver::new(None, &[]);
        let url = r.start().unwrap_or_default();
        let address = url.trim_start_matches("http://");
        let Ok(mut stream) = TcpStream::connect(address) else { panic!("connect to {address}") };
        // WHEN two deliveries of one event arrive on one connection
        for webhook in [0, 1] {
            let body = r#"{"event_id":"run-1"}"#;
            let request =
                format!("POST /e2e/{webhook} HTTP/1.1\r\nhost: x\r\ncontent-length: {}\r\n\r\n{body}", body.len());
            assert!(stream.write_all(request.as_bytes()).is_ok(), "write");
            let mut response = [0u8; 38];
            assert!(stream.read_exact(&mut response).is_ok(), "read");
            // THEN each is answered 200
            assert!(response.starts_with(b"HTTP/1.1 200 OK"));
        }
        // AND both pairs are recorded as delivered
        assert_eq!(r.delivered(), 2);
    }
}
