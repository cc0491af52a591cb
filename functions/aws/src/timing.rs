//! Time spent waiting on AWS, told apart from our own code.
//!
//! Every SDK request goes through the HTTP connector of [`timed_http_client`], which keeps the
//! wall time during which at least one request to AWS was in flight (concurrent requests count
//! once). [`invocation`] wraps a handler and logs one line per invocation with its duration
//! and that time: `aws_ms` of `duration_ms` is AWS (or, locally, the emulator); the rest is
//! the function's own work and its deliveries' HTTP.

use std::future::Future;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::config::SharedHttpClient;
use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpConnector,
};
use aws_smithy_runtime_api::client::orchestrator::HttpRequest;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;

/// The process's AWS clock. Lambda runs one invocation at a time per process, so the
/// difference of two readings around an invocation is that invocation's.
#[derive(Debug, Default)]
struct Clock {
    in_flight: u32,
    busy_since: Option<Instant>,
    busy: Duration,
    calls: u64,
}

static CLOCK: Mutex<Clock> = Mutex::new(Clock { in_flight: 0, busy_since: None, busy: Duration::ZERO, calls: 0 });

fn with_clock<T>(f: impl FnOnce(&mut Clock) -> T) -> T {
    // A panic cannot leave the clock half-updated in a way that matters: use it anyway.
    let mut clock = CLOCK.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    f(&mut clock)
}

/// Time spent with at least one AWS request in flight, and requests made, since the process
/// started.
pub fn aws_time() -> (Duration, u64) {
    with_clock(|c| {
        let running = c.busy_since.map(|since| since.elapsed()).unwrap_or_default();
        (c.busy + running, c.calls)
    })
}

/// One request in flight; dropping it (finished, failed or cancelled) stops its clock.
#[derive(Debug)]
struct InFlight;

impl InFlight {
    fn start() -> Self {
        with_clock(|c| {
            if c.in_flight == 0 {
                c.busy_since = Some(Instant::now());
            }
            c.in_flight += 1;
            c.calls += 1;
        });
        Self
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        with_clock(|c| {
            c.in_flight = c.in_flight.saturating_sub(1);
            if c.in_flight == 0
                && let Some(since) = c.busy_since.take()
            {
                c.busy += since.elapsed();
            }
        });
    }
}

#[derive(Debug)]
struct TimedClient(SharedHttpClient);

#[derive(Debug)]
struct TimedConnector(SharedHttpConnector);

impl HttpClient for TimedClient {
    fn http_connector(&self, settings: &HttpConnectorSettings, components: &RuntimeComponents) -> SharedHttpConnector {
        SharedHttpConnector::new(TimedConnector(self.0.http_connector(settings, components)))
    }
}

impl HttpConnector for TimedConnector {
    fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
        let call = self.0.call(request);
        HttpConnectorFuture::new(async move {
            let _in_flight = InFlight::start();
            call.await
        })
    }
}

/// `inner`, with every request it sends timed on the process's AWS clock.
pub fn timed_http_client(inner: SharedHttpClient) -> SharedHttpClient {
    SharedHttpClient::new(TimedClient(inner))
}

/// Runs one invocation's `work` and logs its duration and its time waiting on AWS.
pub async fn invocation<F: Future>(work: F) -> F::Output {
    let started = Instant::now();
    let (aws_before, calls_before) = aws_time();
    let out = work.await;
    let (aws_after, calls_after) = aws_time();
    tracing::info!(
        duration_ms = millis(started.elapsed()),
        aws_ms = millis(aws_after.saturating_sub(aws_before)),
        aws_calls = calls_after - calls_before,
        "invocation timed"
    );
    out
}

fn millis(d: Duration) -> f64 {
    (d.as_secs_f64() * 1e6).round() / 1e3
}

#[cfg(test)]
mod tests {
    use super::*;

    // One test touches the process-wide clock, so the readings are not disturbed by others.
    // It compares the clock with intervals measured around it, so a slow machine (sleeps that
    // overshoot) cannot make it fail.
    #[test]
    fn overlapping_requests_count_once_and_idle_time_does_not_count() {
        // GIVEN the clock at rest
        let (busy0, calls0) = aws_time();
        // WHEN two requests overlap, then one runs alone
        let started = Instant::now();
        let a = InFlight::start();
        std::thread::sleep(Duration::from_millis(30));
        let b_started = Instant::now();
        let b = InFlight::start();
        std::thread::sleep(Duration::from_millis(30));
        drop(a);
        let a_took = started.elapsed();
        std::thread::sleep(Duration::from_millis(20));
        drop(b);
        let b_took = b_started.elapsed();
        let wall = started.elapsed();
        // AND nothing is in flight for a while
        std::thread::sleep(Duration::from_millis(50));
        let (busy1, calls1) = aws_time();
        // THEN two calls are counted
        assert_eq!(calls1 - calls0, 2);
        // AND the busy time is the union of the two, within the wall time around them (so
        // neither the overlap twice nor the idle 50 ms), and more than either request alone
        let busy = busy1 - busy0;
        assert!(busy <= wall, "{busy:?} > wall {wall:?}");
        assert!(busy >= a_took.max(b_took), "{busy:?} < the longer request");
        assert!(busy < a_took + b_took, "{busy:?} counts the overlap twice ({a_took:?} + {b_took:?})");
    }
}
