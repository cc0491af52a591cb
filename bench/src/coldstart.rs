//! Cold start: from exec of a function's release binary to its first request for work
//! (`GET .../runtime/invocation/next`) on a Runtime API of our own, with the environment the
//! stack gives that function (so config loading and client construction are the real ones,
//! pointing at a running emulator). The process is killed once it asked; the functions take
//! turns, so a load spike hits all of them alike.

use std::collections::BTreeMap;
use std::io::Read;
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde::Serialize;

use crate::stats::{Summary, ms};

/// A binary that has not asked for work by then is reported as failed.
const READY_TIMEOUT: Duration = Duration::from_secs(10);
/// The path of the Runtime API's "next invocation" request.
const NEXT_PATH: &str = "/2018-06-01/runtime/invocation/next";

/// Cold starts of one function.
#[derive(Debug, Serialize)]
pub struct ColdStarts {
    pub binary: String,
    pub runs_ms: Vec<f64>,
    pub summary: Option<Summary>,
}

/// `runs` cold starts of each binary in `bin_dir`, with its environment from `envs`.
pub fn measure(
    bin_dir: &Path,
    envs: &BTreeMap<String, BTreeMap<String, String>>,
    runs: usize,
) -> Result<Vec<ColdStarts>> {
    let mut results: BTreeMap<&str, Vec<f64>> = BTreeMap::new();
    for _ in 0..runs {
        for (binary, env) in envs {
            let took = once(&bin_dir.join(binary), env).with_context(|| format!("cold start of {binary}"))?;
            results.entry(binary).or_default().push(ms(took));
            // Let the killed process's exit settle before the next exec.
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    Ok(results
        .into_iter()
        .map(|(binary, runs_ms)| ColdStarts { binary: binary.to_owned(), summary: Summary::of(&runs_ms), runs_ms })
        .collect())
}

fn once(binary: &Path, env: &BTreeMap<String, String>) -> Result<Duration> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let address = listener.local_addr()?;
    let started = Instant::now();
    let mut child = Command::new(binary)
        .env_clear()
        .envs(env)
        .env("AWS_LAMBDA_RUNTIME_API", address.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .with_context(|| format!("starting {}", binary.display()))?;
    // A binary that dies before asking would leave accept() waiting: wake it up ourselves.
    let pid = child.id();
    let done = Arc::new(AtomicBool::new(false));
    let watching = Arc::clone(&done);
    std::thread::spawn(move || {
        std::thread::sleep(READY_TIMEOUT);
        if !watching.load(Ordering::SeqCst) {
            let _ = TcpStream::connect(address);
        }
    });
    let asked = first_request(&listener);
    let took = started.elapsed();
    done.store(true, Ordering::SeqCst);
    let _ = child.kill();
    let _ = child.wait();
    let path = asked?;
    if took >= READY_TIMEOUT || !path.starts_with(NEXT_PATH) {
        bail!("process {pid} did not ask for work within {READY_TIMEOUT:?} (first request: {path:?})");
    }
    Ok(took)
}

/// Accepts one connection and reads its request head; returns the request path.
fn first_request(listener: &TcpListener) -> Result<String> {
    let (mut stream, _) = listener.accept()?;
    stream.set_read_timeout(Some(READY_TIMEOUT))?;
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = stream.read(&mut buf)?;
        if n == 0 {
            break;
        }
        head.extend_from_slice(&buf[..n]);
    }
    let text = String::from_utf8_lossy(&head);
    Ok(text.split_whitespace().nth(1).unwrap_or_default().to_owned())
}
