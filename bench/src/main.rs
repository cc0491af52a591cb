//! `webhooks-bench <command> --name value ...`: the measuring commands `infra/bench/run.py`
//! runs (see the library's modules). Each writes its figures as JSON to `--out`.
//!
//! - `receiver --port-file F`: a fast receiver on 127.0.0.1:0 until killed; its port goes to F.
//! - `coldstart --stack stack.json --bin-dir DIR --runs N --out F`
//! - `throughput --stack stack.json --receiver URL --rounds N --seconds S --work-dir DIR --out F`
//! - `deliver-worker ...`: the child `throughput` starts with the delivery function's environment.
//! - `pipeline --stack stack.json --events N --rate R --work-dir DIR --out F` and optionally
//!   `--events-fanout1 N` (0), `--events-isolation N` (0), `--publish api|queue` (api), `--payload-bytes B` (1024),
//!   `--snapshot-command "CMD ARGS"` (run with an output path appended before each window)
//! - `critical-path --stack stack.json --samples N --work-dir DIR --out F` (and its child,
//!   `critical-path-worker`)

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use serde::Serialize;
use webhooks_bench::stack::Stack;
use webhooks_bench::{coldstart, critical, pipeline, receiver, throughput};

/// The functions, by binary name.
const FUNCTIONS: [&str; 3] = ["subscriptions", "matcher", "delivery"];

#[tokio::main]
async fn main() -> Result<()> {
    let mut args = std::env::args().skip(1);
    let command = args.next().context("usage: webhooks-bench <command> [--name value ...]")?;
    let options = options(args)?;
    match command.as_str() {
        "receiver" => {
            let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
            let port = listener.local_addr()?.port();
            let file = PathBuf::from(option(&options, "port-file")?);
            let tmp = file.with_extension("tmp");
            std::fs::write(&tmp, port.to_string())?;
            std::fs::rename(tmp, file)?;
            tokio::task::spawn_blocking(move || receiver::serve_fast(listener)).await?;
            Ok(())
        }
        "coldstart" => {
            let stack = open(&options)?;
            let mut envs = BTreeMap::new();
            for binary in FUNCTIONS {
                envs.insert(binary.to_owned(), stack.function_env(binary).await?);
            }
            let bin_dir = PathBuf::from(option(&options, "bin-dir")?);
            let runs = number(&options, "runs")?;
            let results = tokio::task::spawn_blocking(move || coldstart::measure(&bin_dir, &envs, runs)).await??;
            write(&options, &results)
        }
        "throughput" => {
            let stack = open(&options)?;
            let work_dir = work_dir(&options)?;
            let result = throughput::measure(
                &stack,
                option(&options, "receiver")?,
                number(&options, "rounds")?,
                option(&options, "seconds")?.parse()?,
                &work_dir,
            )
            .await?;
            write(&options, &result)
        }
        "deliver-worker" => {
            let webhooks: Vec<String> = option(&options, "webhooks")?.split(',').map(str::to_owned).collect();
            throughput::worker(
                throughput::Mode::parse(option(&options, "mode")?)?,
                option(&options, "receiver")?,
                &webhooks,
                option(&options, "seconds")?.parse()?,
                Path::new(option(&options, "out")?),
            )
            .await
        }
        "pipeline" => {
            let stack_file = PathBuf::from(option(&options, "stack")?);
            let stack = open(&options)?;
            let work_dir = work_dir(&options)?;
            let settings = pipeline::Settings {
                events: number(&options, "events")?,
                rate: option(&options, "rate")?.parse()?,
                events_fan_out_1: options.get("events-fanout1").map(|v| v.parse()).transpose()?.unwrap_or(0),
                events_isolation: options.get("events-isolation").map(|v| v.parse()).transpose()?.unwrap_or(0),
                publish: pipeline::Publish::parse(options.get("publish").map(String::as_str).unwrap_or("api"))?,
                payload_bytes: options.get("payload-bytes").map(|v| v.parse()).transpose()?.unwrap_or(1024),
                snapshot_command: options.get("snapshot-command").cloned(),
            };
            let result = pipeline::measure(&stack, &stack_file, &settings, &work_dir).await?;
            write(&options, &result)
        }
        "critical-path" => {
            let stack_file = PathBuf::from(option(&options, "stack")?);
            let stack = open(&options)?;
            let work_dir = work_dir(&options)?;
            let result = critical::measure(&stack, &stack_file, number(&options, "samples")?, &work_dir).await?;
            write(&options, &result)
        }
        "critical-path-worker" => {
            critical::worker(
                Path::new(option(&options, "stack")?),
                number(&options, "samples")?,
                option(&options, "queue")?,
                Path::new(option(&options, "out")?),
            )
            .await
        }
        other => bail!("unknown command {other}"),
    }
}

fn options(args: impl Iterator<Item = String>) -> Result<HashMap<String, String>> {
    let args: Vec<String> = args.collect();
    let mut out = HashMap::new();
    for pair in args.chunks(2) {
        match pair {
            [name, value] if name.starts_with("--") => {
                out.insert(name.trim_start_matches("--").to_owned(), value.clone());
            }
            _ => bail!("expected --name value pairs, got {pair:?}"),
        }
    }
    Ok(out)
}

fn option<'a>(options: &'a HashMap<String, String>, name: &str) -> Result<&'a str> {
    options.get(name).map(String::as_str).with_context(|| format!("--{name} is required"))
}

fn number(options: &HashMap<String, String>, name: &str) -> Result<usize> {
    option(options, name)?.parse().with_context(|| format!("--{name} must be a whole number"))
}

fn open(options: &HashMap<String, String>) -> Result<Stack> {
    Stack::open(Path::new(option(options, "stack")?))
}

fn work_dir(options: &HashMap<String, String>) -> Result<PathBuf> {
    let dir = PathBuf::from(option(options, "work-dir")?);
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

fn write<T: Serialize>(options: &HashMap<String, String>, value: &T) -> Result<()> {
    let out = option(options, "out")?;
    std::fs::write(out, serde_json::to_vec_pretty(value)?).with_context(|| format!("writing {out}"))
}
