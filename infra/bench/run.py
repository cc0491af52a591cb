"""`make bench`: speed and cost of the webhook service, measured, in one table.

Runs, in this order (each figure a median over repeated runs, with min and max; each ratio
between figures of the same run):

1. sizes of the release binaries (native; arm64 with cargo-lambda when `make package`'s
   tooling is installed in .venv-sam) and cold starts of each function;
2. matching: criterion's samples of `bench/benches/matching.rs`, and the matcher's DynamoDB
   requests per batch, recorded by the emulator;
3. delivery throughput next to `wrk` at the same concurrency against the same receiver;
4. the pipeline end to end on a local stack of the release binaries: events published through
   `POST /v1/events` (one per request) at a steady rate, fanned out to 10 webhooks, 1 KiB
   payloads, 2 % of first attempts failing; then a shorter window at fan-out 1. The emulator
   records every request of each window, the tables are snapshotted before it, and the CPU
   time of every process of the stack is read before and after it;
5. the cost per million deliveries at AWS list prices, from the requests recorded in 4 (every
   write replayed over the snapshot so index writes, updates and deletes are billed at their
   size: aws_usage.py), at receiver latencies of 0, 100 and 1000 ms, with KMS modelled at a
   stated population; re-priced with 16 KiB payloads; and at fan-out 1;
6. CPU-seconds per 1,000 deliveries of each function over the fan-out-10 window, the
   emulator's, the local stack's and the bench's own apart;
7. the critical path: sequential AWS round trips from the matcher receiving an event to its
   first POST, measured on single events (bench/src/critical.rs), and a p50 modelled from them;
8. isolation (two more windows of 4, run last: the webhook that never answers keeps
   retrying): the same events to 8 webhooks without and with two more (one never answering,
   one answering in 2 s), the 8's delivery rate and p99 compared.

Writes the report as JSON to target/bench/bench-<UTC time>.json (and target/bench/latest.json)
and prints the table. The release binaries must be built first (the Makefile target does it;
they are read from $CARGO_TARGET_DIR/release when set).

Settings (environment): BENCH_EVENTS (1000), BENCH_RATE (events per second, 3; each event
fans out to 10 webhooks: the emulator may fall behind at 30 deliveries a second on two cores,
which shows in the latency rows, labelled as the emulator's pace, not in the counts),
BENCH_EVENTS_FANOUT1 (200; 0 = no fan-out-1 window), BENCH_EVENTS_ISOLATION (events of each
isolation window, 60; 0 = none), BENCH_PUBLISH (api | queue),
BENCH_PAYLOAD (bytes of each event's `data`, 1024), BENCH_CRITICAL_SAMPLES (9; 0 = skip),
BENCH_COLDSTART_RUNS (20), BENCH_ROUNDS (5), BENCH_SECONDS (per throughput figure, 5),
BENCH_ARM64 (auto; 0 = skip the arm64 build), BENCH_CRITERION (1; 0 = reuse the last samples).
`run.py --add-matching target/bench/bench-<time>.json` runs only the criterion part into an
existing report and prints its table again.
"""

from __future__ import annotations

import copy
import datetime
import json
import math
import os
import re
import secrets
import string
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import aws_usage  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "target" / "bench"
# Cargo's target directory (CARGO_TARGET_DIR when set, as the Makefile's cargo uses it).
TARGET = Path(os.environ.get("CARGO_TARGET_DIR") or ROOT / "target")
RELEASE = TARGET / "release"
BENCH_BIN = RELEASE / "webhooks-bench"
PYTHON = ROOT / ".venv" / "bin" / "python"
FUNCTIONS = ("subscriptions", "matcher", "delivery")

# A typical in-region latency of one DynamoDB, SQS or KMS call (ms), for the GB-seconds estimate
# at AWS latencies; the measured figures use the emulator's.
AWS_CALL_MS = 6

# AWS list prices, us-east-1, arm64 (USD).
PRICES = {
    "lambda_request": 0.20 / 1e6,
    "lambda_gb_second": 0.0000133334,  # arm64, first 7.5 billion GB-s a month
    "sqs_request": 0.40 / 1e6,  # standard queue, per 64 KiB chunk, beyond the free million
    "dynamodb_wru": 0.625 / 1e6,  # on-demand
    "dynamodb_rru": 0.125 / 1e6,  # on-demand; a strongly consistent read of 4 KiB is 1 RRU
    "kms_request": 0.03 / 1e4,
    "sns_publish": 0.50 / 1e6,
    "logs_gb": 0.50,  # CloudWatch Logs ingestion, standard class
    "api_request": 1.00 / 1e6,  # API Gateway HTTP API, first 300 million a month (per 512 KB)
}
# Receiver latencies the Lambda time is priced at: a batch's POSTs go out concurrently, so a
# delivery invocation waits about one receiver latency (its slowest receiver's) on top of its
# own work and its AWS calls.
RECEIVER_LATENCIES_MS = (0, 100, 1000)
# The population the KMS cost is modelled at: the delivery function caches a decrypted secret
# per execution environment for 5 minutes from the Decrypt (functions/aws/src/kms.rs: a hit
# does not extend it), and SQS spreads a webhook's deliveries over the environments.
KMS_MODEL = {"webhooks": 10_000, "environments": 20, "events_per_webhook_per_minute": 1.0, "cache_ttl_s": 300}
# The payload the cost is also priced at (every copy of the run's payload grown to it).
LARGE_PAYLOAD = 16 * 1024
# Latencies the critical path is modelled at (ms, p50, in-region): one DynamoDB, SQS or KMS
# call; one queue hand-off (an SQS message to its Lambda invocation by the event source
# mapping: AWS publishes no p50 for it; this is an assumption, stated with the figure).
SERVICE_MS = {"DynamoDB": 5.0, "SQS": 8.0, "KMS": 8.0, "SNS": 10.0}
HANDOFF_MS = 20.0
# Lambda's own START/END/REPORT lines per invocation (text format), in CloudWatch Logs.
PLATFORM_LOG_BYTES = 260

TARGETS = {
    "cold_start_ms": 20.0,
    "arm64_mb": 10.0,
    "match_us_at_10k": 20.0,
    "throughput_ratio": 0.7,
    "e2e_p50_ms": 100.0,
    "e2e_p99_ms": 300.0,
    "cost_with_log": 1.00,
    "cost_without_log": 0.35,
    "cpu_s_per_1000": 0.4,
    "critical_round_trips": 3,
    "critical_p50_ms": 60.0,
    "isolation_rate_ratio": 0.9,
    "isolation_p99_ratio": 1.1,
}


def env_number(name: str, default: float) -> float:
    raw = os.environ.get(name, "").strip()
    return float(raw) if raw else default


def load() -> list[float]:
    return [float(x) for x in Path("/proc/loadavg").read_text().split()[:3]]


def log(message: str) -> None:
    sys.stderr.write(f"[bench {time.strftime('%H:%M:%S')}] {message}\n")
    sys.stderr.flush()


def run_bench(command: str, *args: str, out: Path) -> dict:
    subprocess.run([str(BENCH_BIN), command, *args, "--out", str(out)], cwd=ROOT, check=True)
    return json.loads(out.read_text())


# ---------------------------------------------------------------------------- the machine


def machine() -> dict:
    cpuinfo = Path("/proc/cpuinfo").read_text()
    model = next((l.split(":", 1)[1].strip() for l in cpuinfo.splitlines() if l.startswith("model name")), "unknown")
    meminfo = Path("/proc/meminfo").read_text()
    mem_kib = int(re.search(r"MemTotal:\s+(\d+)", meminfo).group(1))
    rustc = subprocess.run(["rustc", "--version"], capture_output=True, text=True).stdout.strip()
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    dirty = bool(subprocess.run(["git", "status", "--porcelain"], cwd=ROOT, capture_output=True, text=True).stdout.strip())
    return {"cpu": model, "cores": os.cpu_count(), "memory_gib": round(mem_kib / 1024 / 1024, 1), "rustc": rustc,
            "commit": commit + (" + uncommitted changes" if dirty else "")}


# ---------------------------------------------------------------------------- 1. sizes


def sizes() -> dict:
    native = {b: (RELEASE / b).stat().st_size for b in FUNCTIONS}
    stripped = {b: "not stripped" not in subprocess.run(["file", str(RELEASE / b)], capture_output=True, text=True).stdout for b in FUNCTIONS}
    result = {"native_bytes": native, "native_stripped": stripped, "arm64_bytes": None, "arm64_note": None}
    cargo_lambda = ROOT / ".venv-sam" / "bin" / "cargo-lambda"
    if os.environ.get("BENCH_ARM64", "auto") == "0":
        result["arm64_note"] = "skipped (BENCH_ARM64=0)"
    elif not cargo_lambda.exists():
        result["arm64_note"] = "not measured: make package's tooling (cargo-lambda in .venv-sam) is not installed"
    else:
        env = {**os.environ, "PATH": f"{ROOT / '.venv-sam' / 'bin'}:{os.environ.get('PATH', '')}"}
        arm = {}
        for b in FUNCTIONS:
            log(f"cargo lambda build --release --arm64 --bin {b}")
            subprocess.run([str(cargo_lambda), "lambda", "build", "--release", "--arm64", "--bin", b], cwd=ROOT, env=env, check=True)
            arm[b] = (TARGET / "lambda" / b / "bootstrap").stat().st_size
        result["arm64_bytes"] = arm
    return result


# ---------------------------------------------------------------------------- 2. criterion


def criterion() -> dict:
    if os.environ.get("BENCH_CRITERION", "1") != "0":
        subprocess.run(["cargo", "bench", "-p", "webhooks-bench", "--bench", "matching"], cwd=ROOT, check=True)
    base = TARGET / "criterion"
    out: dict = {}
    # Only the variants the benchmark has now: criterion keeps the directories of removed ones.
    variants = {"match_one_event": ("shipped", "shipped_with_messages", "scan_loop"), "build_index": ("shipped",), "decode_index_entries": ("serde_dynamo",)}
    for group, per_item in (("match_one_event", False), ("build_index", True), ("decode_index_entries", True)):
        for variant_dir in sorted((base / group).glob("*")):
            if not variant_dir.is_dir() or variant_dir.name not in variants[group]:
                continue
            for size_dir in sorted(variant_dir.glob("*"), key=lambda p: int(p.name) if p.name.isdigit() else -1):
                sample = size_dir / "new" / "sample.json"
                if not size_dir.name.isdigit() or not sample.exists():
                    continue
                data = json.loads(sample.read_text())
                n = int(size_dir.name)
                per_iteration_us = [t / i / 1000 for t, i in zip(data["times"], data["iters"])]
                summary = summarize(per_iteration_us)
                entry = {"per_iteration_us": summary}
                if per_item:
                    entry["per_item_us"] = {k: (v / n if k != "runs" else v) for k, v in summary.items()}
                out.setdefault(group, {}).setdefault(variant_dir.name, {})[n] = entry
    return out


def summarize(values: list[float]) -> dict:
    v = sorted(values)
    if not v:
        return {}
    mid = len(v) // 2
    median = v[mid] if len(v) % 2 else (v[mid - 1] + v[mid]) / 2
    return {"median": median, "min": v[0], "max": v[-1], "runs": len(v)}


# ---------------------------------------------------------------------------- the local stack


class LocalStack:
    def __init__(self, state_dir: Path, extra_env: dict[str, str]):
        self.state_dir = state_dir
        self.extra_env = extra_env
        self.proc: subprocess.Popen | None = None

    @property
    def stack_file(self) -> Path:
        return self.state_dir / "stack.json"

    def __enter__(self) -> "LocalStack":
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.stack_file.unlink(missing_ok=True)
        key = "whk_" + "".join(secrets.choice(string.ascii_letters + string.digits) for _ in range(40))
        env = {
            **os.environ,
            "PYTHONPATH": str(ROOT / "infra"),
            "WEBHOOKS_HTTP_PORT": "0",
            "WEBHOOKS_EMULATOR_PORT": "0",
            "WEBHOOKS_ADMIN_KEY": key,
            # The emulator's request recorder (started and stopped by the bench) writes here.
            "MOTO_RECORDER_FILEPATH": str(self.state_dir / "emulator-recording.jsonl"),
            **self.extra_env,
        }
        env.pop("WEBHOOKS_ADMIN_KEY_SHA256", None)
        env.pop("WEBHOOKS_LOCAL_FAULT_RATE", None)
        self.log_file = open(self.state_dir / "runner.log", "w")
        self.proc = subprocess.Popen(
            [str(PYTHON), "-m", "local_stack", "--state-dir", str(self.state_dir), "--bin-dir", str(RELEASE), "-v"],
            cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=self.log_file, stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 180
        while not self.stack_file.exists():
            if self.proc.poll() is not None:
                raise RuntimeError(f"the local stack exited:\n{(self.state_dir / 'runner.log').read_text()[-3000:]}")
            if time.monotonic() > deadline:
                raise RuntimeError("the local stack did not start within 180 s")
            time.sleep(0.1)
        self.info = json.loads(self.stack_file.read_text())
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        while True:
            try:
                with opener.open(self.info["api_url"] + "/health", timeout=5) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("the local stack's /health did not answer")
            time.sleep(0.1)
        return self

    def __exit__(self, *exc) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log_file.close()

    def boto3(self, service: str):
        import boto3

        return boto3.client(service, endpoint_url=self.info["emulator_url"], region_name=self.info["region"],
                            aws_access_key_id="test", aws_secret_access_key="test")


# ---------------------------------------------------------------------------- 5. cost


def kms_decrypts_per_attempt(model: dict = KMS_MODEL) -> float:
    """Decrypts per delivery attempt at `model`'s population. A webhook's attempts reach one
    environment as a Poisson stream of rate r / E; a Decrypt caches the secret there for TTL
    seconds, during which r / E * TTL attempts hit on average; the next attempt after that
    decrypts again. So one Decrypt per 1 + r / E * TTL attempts (the number of webhooks only
    sets the load: 10 000 webhooks at 1 event a minute is 167 deliveries a second)."""
    per_env = model["events_per_webhook_per_minute"] / 60 / model["environments"]
    return 1 / (1 + per_env * model["cache_ttl_s"])


def lambda_gb_seconds(window: dict, memory: dict[str, int], receiver_ms: float | None) -> dict[str, float]:
    """GB-seconds of each function over the window. `receiver_ms` None: the invocations as
    timed on the local stack (the emulator's pace). Otherwise each invocation at AWS pace: its
    own time (not waiting on AWS) + AWS_CALL_MS per AWS call (concurrent calls counted one
    after the other: errs high) + `receiver_ms` for a delivery invocation (its POSTs go out
    together; it waits for the slowest), rounded up to the millisecond."""
    out = {}
    for f, t in window["invocations"].items():
        if receiver_ms is None:
            ms = t["billed_ms"]
        else:
            extra = receiver_ms if f == "delivery" else 0
            ms = sum(math.ceil(max(1.0, d - a + c * AWS_CALL_MS + extra)) for d, a, c in t["each"])
        out[f] = ms / 1000 * memory.get(f, 512) / 1024
    return out


def cost(window: dict, usage: aws_usage.Tally, memory: dict[str, int]) -> dict:
    """Cost per million deliveries of one measured window (see the module's documentation)."""
    deliveries = window["pairs_delivered"]
    per = 1e6 / deliveries
    attempts = deliveries + window["extra_requests"]
    invocations = {f: t["count"] for f, t in window["invocations"].items()}
    log_bytes = sum(window["log_bytes"].values()) + PLATFORM_LOG_BYTES * sum(invocations.values())
    decrypts = attempts * kms_decrypts_per_attempt()
    lines = {
        "lambda_requests": sum(invocations.values()) * PRICES["lambda_request"] * per,
        "api_gateway": window["api_requests"] * PRICES["api_request"] * per,
        "sqs": usage.sqs_units * PRICES["sqs_request"] * per,
        "dynamodb_reads": usage.rru * PRICES["dynamodb_rru"] * per,
        "dynamodb_table_writes": usage.table_wru * PRICES["dynamodb_wru"] * per,
        "dynamodb_index_writes": usage.index_wru * PRICES["dynamodb_wru"] * per,
        "kms_modelled": decrypts * PRICES["kms_request"] * per,
        "sns": usage.sns * PRICES["sns_publish"] * per,
        "cloudwatch_logs": log_bytes / 1e9 * PRICES["logs_gb"] * per,
    }
    fixed = sum(lines.values())
    saved = usage.success_log_wru * PRICES["dynamodb_wru"] * per
    by_latency = {}
    for latency in RECEIVER_LATENCIES_MS:
        gb_s = lambda_gb_seconds(window, memory, latency)
        compute = sum(gb_s.values()) * PRICES["lambda_gb_second"] * per
        by_latency[str(latency)] = {"lambda_gb_seconds": compute, "with_success_log": fixed + compute,
                                    "without_success_log": fixed + compute - saved}
    emulator_gb_s = sum(lambda_gb_seconds(window, memory, None).values())
    return {
        "deliveries": deliveries,
        "per_million_deliveries": lines,
        "by_receiver_latency_ms": by_latency,
        "success_log": saved,
        "lambda_gb_seconds_at_emulator_pace_not_in_total": emulator_gb_s * PRICES["lambda_gb_second"] * per,
        "kms_measured_in_this_run": usage.kms * PRICES["kms_request"] * per,
        "units_per_delivery": {
            "lambda_invocations": {f: n / deliveries for f, n in invocations.items()},
            "api_requests": window["api_requests"] / deliveries,
            "sqs_requests": usage.sqs_units / deliveries,
            "dynamodb_rru": usage.rru / deliveries,
            "dynamodb_table_wru": usage.table_wru / deliveries,
            "dynamodb_index_wru": usage.index_wru / deliveries,
            "dynamodb_wru_success_log": usage.success_log_wru / deliveries,
            "kms_decrypts_measured": usage.kms / deliveries,
            "kms_decrypts_modelled": decrypts / deliveries,
            "log_bytes": log_bytes / deliveries,
            "payload_copies_written": {k: v / deliveries for k, v in usage.payload_copies.items()},
        },
        "replay": {"failed_conditions": usage.failed_conditions, "unmodelled_updates": usage.unmodelled_updates,
                   "index_queries_at_minimum": usage.index_queries},
    }


def price_window(window: dict, deliveries_table: str, memory: dict[str, int], fallback: aws_usage.TableSizes | None,
                 grow: int = 0) -> tuple[dict, dict]:
    """(usage, cost) of a window's recording, replayed over its snapshot (grown by `grow`)."""
    recording = aws_usage.parse_recording(Path(window["recording"]).read_text(), grow)
    if window.get("snapshot"):
        snap = json.loads(aws_usage.grow_payload(Path(window["snapshot"]).read_text(), grow))
        sizes = aws_usage.TableSizes.from_snapshot(snap)
    else:
        sizes = copy.deepcopy(fallback)
    usage = aws_usage.tally(recording, sizes, deliveries_table)
    return usage.as_dict(), cost(window, usage, memory)


def cpu_per_thousand(window: dict) -> dict:
    deliveries = window["pairs_delivered"]
    seconds = window["cpu"]["seconds_by_role"]
    out = {role: s / deliveries * 1000 for role, s in seconds.items()}
    out["functions_together"] = sum(out.get(f, 0) for f in FUNCTIONS)
    return out


def critical_model(critical: dict) -> dict | None:
    """The modelled p50 from ingest to the first POST: two queue hand-offs, each measured round
    trip at its slowest call's stated latency, and our own time on the path as measured."""
    warm = [s for s in critical["samples"] if not s["cold_secret_cache"]]
    if not warm:
        return None
    modelled = []
    for s in warm:
        trips = sum(max(SERVICE_MS.get(op.split(":", 1)[0], AWS_CALL_MS) for op in ops) for ops, _ in s["groups"])
        modelled.append(2 * HANDOFF_MS + trips + s["own_ms"])
    ordered = sorted(warm, key=lambda s: s["round_trips"])
    return {"p50_ms": summarize(modelled), "median_sample": ordered[len(ordered) // 2]}


# ---------------------------------------------------------------------------- the table


def fmt(v: float | None, digits: int = 1) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    return f"{v:,.{digits}f}"


def verdict(value: float | None, target: float, lower_is_better: bool = True, unit: str = "") -> str:
    if value is None:
        return "not measured"
    gap = value - target
    ok = gap <= 0 if lower_is_better else gap >= 0
    if ok:
        return f"PASS (margin {fmt(abs(gap), 2)}{unit})"
    return f"MISS by {fmt(abs(gap), 2)}{unit} ({fmt(value / target if lower_is_better else target / value, 1)}x)"


def table(report: dict) -> str:
    rows: list[tuple[str, str, str, str, str, str]] = []

    def add(name, summary, target="", result="", digits=1):
        if isinstance(summary, dict) and summary:
            rows.append((name, fmt(summary.get("median"), digits), fmt(summary.get("min"), digits), fmt(summary.get("max"), digits), target, result))
        else:
            rows.append((name, fmt(summary, digits) if isinstance(summary, (int, float)) else str(summary or "-"), "", "", target, result))

    for c in report["cold_start"]:
        s = c["summary"]
        add(f"1 cold start {c['binary']} (ms, exec -> /next, n={s['runs']})", s, "<= 20 ms", verdict(s["median"], TARGETS["cold_start_ms"], unit=" ms"))
    sz = report["sizes"]
    for b in FUNCTIONS:
        add(f"1 stripped size {b}, native x86_64 (MB)", sz["native_bytes"][b] / 1e6, "", "", 2)
    for b in FUNCTIONS:
        arm = (sz["arm64_bytes"] or {}).get(b)
        add(f"1 stripped size {b}, arm64 (MB)", arm / 1e6 if arm else (sz["arm64_note"] or "-"), "<= 10 MB",
            verdict(arm / 1e6 if arm else None, TARGETS["arm64_mb"], unit=" MB"), 2)

    m = report["matching"].get("match_one_event", {})
    labels = {"shipped": "matcher's index (as shipped)",
              "shipped_with_messages": "the same, plus its delivery messages (up to 10)",
              "scan_loop": "baseline: every entry of the project, messages included"}
    for variant in ("shipped", "shipped_with_messages", "scan_loop"):
        for n, entry in sorted(m.get(variant, {}).items()):
            is_target = variant == "shipped" and n == 10000
            s = entry["per_iteration_us"]
            add(f"2 match 1 event, {n:,} subs in project, {labels[variant]} (us)", s,
                "<= 20 us" if is_target else "", verdict(s["median"], TARGETS["match_us_at_10k"], unit=" us") if is_target else "", 2)
    for n, entry in sorted(report["matching"].get("build_index", {}).get("shipped", {}).items()):
        add(f"2 build the batch's index of {n:,} subs, once per batch (us)", entry["per_iteration_us"], "", "", 2)
    for n, entry in sorted(report["matching"].get("decode_index_entries", {}).get("serde_dynamo", {}).items()):
        add(f"2 decode {n:,} IndexEntry items, serde_dynamo (us per item)", entry["per_item_us"], "", "", 3)
    for batch in report["matcher_requests"]:
        ops = ", ".join(f"{k} {v}" for k, v in batch["dynamodb_by_operation"].items())
        add(f"2 matcher DynamoDB requests per batch: {batch['shape']} ({ops})", batch["dynamodb_requests"], "", "", 0)
        add(f"2   per event; RRU / WRU per batch {fmt(batch['rru'])} / {fmt(batch['wru'])}", batch["dynamodb_requests"] / batch["events"], "", "", 1)

    t = report["throughput"]
    add("3 delivery handler, batches of 10 (deliveries/s)", t["handler_per_s"], "", "", 0)
    add("3 HTTP sender alone, 10 concurrent (deliveries/s)", t["sender_per_s"], "", "", 0)
    add(f"3 wrk -c10 same receiver (requests/s)", t["raw_per_s"], "", "", 0)
    ratio = t.get("handler_to_raw") or {}
    add("3 handler / wrk (same round)", ratio, ">= 0.7", verdict(ratio.get("median"), TARGETS["throughput_ratio"], lower_is_better=False), 3)
    add("3 sender alone / wrk (same round)", t.get("sender_to_raw"), "", "", 3)
    add("3 handler over its time not waiting on AWS (deliveries/s)", t.get("handler_without_aws_per_s"), "", "", 0)
    add("3   / wrk (same round): our code's bound if AWS answered at once", t.get("handler_without_aws_to_raw"), "", "", 3)

    p = report["pipeline"]
    e = p["e2e"]
    lat = e["latency_ms"]
    how = "POST /v1/events" if e.get("publish") == "api" else "the ingest queue"
    add(f"4 ingest->receiver p50 (ms, the emulator's pace), {lat['count']:,} deliveries of {e['events']:,} events at "
        f"{fmt(e['rate_per_s'], 1)}/s through {how}", lat["p50"], "<= 100 ms", verdict(lat["p50"], TARGETS["e2e_p50_ms"], unit=" ms"))
    add("4 ingest->receiver p90 (ms, the emulator's pace)", lat["p90"])
    add("4 ingest->receiver p99 (ms, the emulator's pace)", lat["p99"], "<= 300 ms", verdict(lat["p99"], TARGETS["e2e_p99_ms"], unit=" ms"))
    add("4 ingest->last of the event's 10 webhooks p50 / p99 (ms, the emulator's pace)", f"{fmt(e['event_latency_ms']['p50'])} / {fmt(e['event_latency_ms']['p99'])}")
    inv = e["invocations"]
    for f in FUNCTIONS:
        if f not in inv:
            continue
        t = inv[f]
        add(f"4 {f} invocation (ms, n={t['count']:,}): duration; of which AWS calls {fmt(t['aws_ms']['median'])} "
            f"(median of {fmt(t['aws_calls']['median'], 0)} calls)", t["duration_ms"])
    total = sum(inv[f]["total_duration_ms"] for f in inv)
    aws = sum(inv[f]["total_aws_ms"] for f in inv)
    # The delivery's invocation goes on after the POST (its log writes), so the functions' time
    # is split, not the latency.
    add("4 share of the functions' time: emulator calls / our code (all invocations)",
        f"{aws / total:.0%} / {1 - aws / total:.0%}" if total else "-")

    c = report["cost"]
    shape = f"fan-out {e['fan_out']}, {e.get('payload_bytes', 0):,} B payloads, {e['pairs_failed_first']:,} of {e['pairs_delivered']:,} first attempts failed"
    add(f"5 cost per 1M deliveries (USD): {shape}", "")
    for latency in RECEIVER_LATENCIES_MS:
        v = c["by_receiver_latency_ms"][str(latency)]["with_success_log"]
        add(f"5   with success log, receivers answering in {latency} ms", v, "<= $1.00", verdict(v, TARGETS["cost_with_log"], unit=" $"), 3)
    for latency in RECEIVER_LATENCIES_MS:
        v = c["by_receiver_latency_ms"][str(latency)]["without_success_log"]
        add(f"5   without success log, receivers answering in {latency} ms", v, "<= $0.35", verdict(v, TARGETS["cost_without_log"], unit=" $"), 3)
    for k, v in c["per_million_deliveries"].items():
        add(f"5     {k}", v, "", "", 3)
    add("5     lambda_gb_seconds at 0 / 100 / 1000 ms", " / ".join(fmt(c["by_receiver_latency_ms"][str(l)]["lambda_gb_seconds"], 3) for l in RECEIVER_LATENCIES_MS))
    add("5     of which the success log (table and index writes)", c["success_log"], "", "", 3)
    u = c["units_per_delivery"]
    add("5   per delivery: DynamoDB WRU table / index (success log's)",
        f"{fmt(u['dynamodb_table_wru'], 2)} / {fmt(u['dynamodb_index_wru'], 2)} ({fmt(u['dynamodb_wru_success_log'], 2)})")
    add("5   per delivery: DynamoDB RRU; SQS requests; log bytes",
        f"{fmt(u['dynamodb_rru'], 2)}; {fmt(u['sqs_requests'], 2)}; {fmt(u['log_bytes'], 0)}")
    copies = u.get("payload_copies_written", {})
    add("5   per delivery: payload copies written (" + ", ".join(f"{k} {fmt(v, 2)}" for k, v in copies.items()) + ")",
        sum(copies.values()), "", "", 2)
    m = KMS_MODEL
    add(f"5   KMS Decrypts per delivery, modelled ({m['webhooks']:,} webhooks, {m['environments']} environments, "
        f"{m['events_per_webhook_per_minute']:g} event/min each, {m['cache_ttl_s']} s cache) / measured here",
        f"{fmt(u['kms_decrypts_modelled'], 3)} / {fmt(u['kms_decrypts_measured'], 3)}")
    add("5   lambda_gb_seconds at the emulator's pace (not in the totals)", c["lambda_gb_seconds_at_emulator_pace_not_in_total"], "", "", 3)
    large = report.get("cost_large_payload")
    if large:
        v = large["by_receiver_latency_ms"]["100"]
        add(f"5 at {LARGE_PAYLOAD // 1024} KiB payloads (the run re-priced, every payload copy grown), receivers at 100 ms: with / without success log",
            f"{fmt(v['with_success_log'], 3)} / {fmt(v['without_success_log'], 3)}")
    one = report.get("cost_fan_out_1")
    if one:
        f1 = p["fan_out_1"]
        v = one["by_receiver_latency_ms"]["100"]
        add(f"5 at fan-out 1 (measured: {f1['events']:,} events, {f1['pairs_failed_first']} first attempts failed), receivers at 100 ms: with / without success log",
            f"{fmt(v['with_success_log'], 3)} / {fmt(v['without_success_log'], 3)}")
    else:
        add("5 at fan-out 1", "not measured (BENCH_EVENTS_FANOUT1=0)")

    cpu = report.get("cpu_per_1000")
    if cpu:
        load_note = fmt(report["load"].get("pipeline", [float("nan")])[0], 2)
        add(f"6 CPU-seconds per 1,000 deliveries, {e['events']:,} events at {fmt(e['rate_per_s'], 1)}/s x fan-out {e['fan_out']} "
            f"(machine shared with other runs: load {load_note} at the start)", "")
        for f in FUNCTIONS:
            add(f"6   {f}", cpu.get(f), "", "", 3)
        add("6   the three functions together", cpu["functions_together"], "<= 0.4 s", verdict(cpu["functions_together"], TARGETS["cpu_s_per_1000"], unit=" s"), 3)
        for role, v in sorted(cpu.items()):
            if role not in FUNCTIONS and role != "functions_together":
                add(f"6   {role} (apart)", v, "", "", 3)

    cp = report.get("critical_path")
    if cp:
        rt = cp.get("round_trips") or {}
        add(f"7 sequential AWS round trips, matcher receiving an event -> first POST (secrets cached, n={rt.get('runs', 0)})",
            rt, "<= 3", verdict(rt.get("median"), TARGETS["critical_round_trips"]), 0)
        model = report.get("critical_model")
        if model:
            for i, (label, (ops, took)) in enumerate(zip(model["median_sample"]["described"], model["median_sample"]["groups"])):
                add(f"7   round trip {i + 1} (ms on the emulator): {label}", took, "", "", 1)
        cold = [s for s in cp["samples"] if s["cold_secret_cache"]]
        if cold:
            add("7   the same with the secrets not cached yet (the first event)", cold[0]["round_trips"], "", "", 0)
        add("7   our own time on the path (ms, not waiting on AWS; this machine)", cp.get("own_ms"), "", "", 1)
        if model:
            add(f"7 modelled p50 ingest -> POST (ms): 2 hand-offs x {HANDOFF_MS:g} (assumed) + each round trip at "
                + ", ".join(f"{k} {v:g}" for k, v in SERVICE_MS.items()) + " ms + own time",
                model["p50_ms"], "<= 60 ms", verdict(model["p50_ms"].get("median"), TARGETS["critical_p50_ms"], unit=" ms"))

    iso = p.get("isolation")
    if iso:
        base, bad = iso["base"], iso["with_bad"]
        add(f"8 isolation: 8 webhooks, {base['events']:,} events at {fmt(base['rate_per_s'], 1)}/s, without / with 2 more webhooks "
            f"on every event (one never answering: 10 % of deliveries; one answering in 2 s)", "")
        add("8   the 8 webhooks' deliveries/s without / with", f"{fmt(base['delivery_rate_per_s'], 2)} / {fmt(bad['delivery_rate_per_s'], 2)}"
            + ("" if bad["drained"] else f" ({bad['pairs_delivered']:,} of {bad['pairs_expected']:,} arrived in time)"))
        ratio = bad["delivery_rate_per_s"] / base["delivery_rate_per_s"] if base["delivery_rate_per_s"] else None
        add("8   delivery rate with / without", ratio, ">= 0.9", verdict(ratio, TARGETS["isolation_rate_ratio"], lower_is_better=False), 2)
        add("8   the 8 webhooks' p99 ingest->receiver without / with (ms, the emulator's pace)",
            f"{fmt(base['latency_ms']['p99'])} / {fmt(bad['latency_ms']['p99'])}")
        p99 = bad["latency_ms"]["p99"] / base["latency_ms"]["p99"] if base["latency_ms"]["p99"] else None
        add("8   p99 with / without", p99, "<= 1.1", verdict(p99, TARGETS["isolation_p99_ratio"]), 2)
    else:
        add("8 isolation", "not measured (BENCH_EVENTS_ISOLATION=0)")

    headers = ("measure", "median", "min", "max", "target", "result")
    widths = [max(len(r[i]) for r in rows + [headers]) for i in range(6)]
    line = lambda r: "| " + " | ".join(r[i].ljust(widths[i]) if i in (0, 4, 5) else r[i].rjust(widths[i]) for i in range(6)) + " |"
    sep = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    mach = report["machine"]
    head = [
        f"Webhooks benchmark, {report['started_at']}, commit {mach['commit']}",
        f"Machine: {mach['cpu']}, {mach['cores']} cores, {mach['memory_gib']} GiB; {mach['rustc']}; release profile",
        "Load average (1 min) at the start of each part: " + ", ".join(f"{k} {v[0]:.2f}" for k, v in report["load"].items()),
        "",
    ]
    return "\n".join(head + [line(headers), sep] + [line(r) for r in rows])


# ---------------------------------------------------------------------------- main


def add_matching(path: Path) -> int:
    """Runs the criterion benchmarks into an existing report and prints its table again."""
    report = json.loads(path.read_text())
    report["load"]["matching"] = load()
    report["matching"] = criterion()
    text = table(report)
    path.write_text(json.dumps(report, indent=2, default=str))
    (OUT / "latest.json").write_text(json.dumps(report, indent=2, default=str))
    path.with_suffix(".txt").write_text(text + "\n")
    print(text)
    return 0


def main() -> int:
    if len(sys.argv) == 3 and sys.argv[1] == "--add-matching":
        return add_matching(Path(sys.argv[2]))
    OUT.mkdir(parents=True, exist_ok=True)
    for b in (*FUNCTIONS, "webhooks-bench"):
        if not (RELEASE / b).exists():
            log(f"{RELEASE / b} is missing: cargo build --release first (make bench does)")
            return 1
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    work = OUT / f"run-{stamp}"
    work.mkdir(parents=True)
    report: dict = {"started_at": stamp, "machine": machine(), "load": {}, "prices_usd": PRICES,
                    "targets": TARGETS, "settings": {}}
    events = int(env_number("BENCH_EVENTS", 1000))
    rate = env_number("BENCH_RATE", 3)
    events_one = int(env_number("BENCH_EVENTS_FANOUT1", 200))
    publish = os.environ.get("BENCH_PUBLISH", "api").strip() or "api"
    payload = int(env_number("BENCH_PAYLOAD", 1024))
    critical_samples = int(env_number("BENCH_CRITICAL_SAMPLES", 9))
    isolation_events = int(env_number("BENCH_EVENTS_ISOLATION", 60))
    report["settings"] = {"events": events, "rate_per_s": rate, "coldstart_runs": int(env_number("BENCH_COLDSTART_RUNS", 20)),
                          "rounds": int(env_number("BENCH_ROUNDS", 5)), "seconds": env_number("BENCH_SECONDS", 5),
                          "retry_schedule": "2s", "processes_per_function": 2, "events_fan_out_1": events_one,
                          "publish": publish, "payload_bytes": payload, "critical_samples": critical_samples,
                          "events_isolation": isolation_events,
                          "kms_model": KMS_MODEL, "receiver_latencies_ms": RECEIVER_LATENCIES_MS,
                          "service_ms": SERVICE_MS, "handoff_ms": HANDOFF_MS, "aws_call_ms": AWS_CALL_MS}

    report["load"]["sizes"] = load()
    report["sizes"] = sizes()
    report["load"]["matching"] = load()
    log("criterion: matching and decoding")
    report["matching"] = criterion()

    # Retries after 2 s instead of 30 s, so the failed first attempts finish within the run;
    # the requests a retry makes do not depend on its delay.
    with LocalStack(work / "stack", {"WEBHOOKS_RETRY_SCHEDULE": "2s"}) as stack:
        report["load"]["cold_start"] = load()
        log("cold starts")
        report["cold_start"] = run_bench("coldstart", "--stack", str(stack.stack_file), "--bin-dir", str(RELEASE),
                                         "--runs", str(report["settings"]["coldstart_runs"]), out=work / "coldstart.json")

        report["load"]["throughput"] = load()
        log("delivery throughput")
        port_file = work / "receiver.port"
        receiver = subprocess.Popen([str(BENCH_BIN), "receiver", "--port-file", str(port_file)], stdin=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 10
            while not port_file.exists() and time.monotonic() < deadline:
                time.sleep(0.05)
            url = f"http://127.0.0.1:{port_file.read_text().strip()}"
            report["throughput"] = run_bench("throughput", "--stack", str(stack.stack_file), "--receiver", url,
                                             "--rounds", str(report["settings"]["rounds"]), "--seconds", str(report["settings"]["seconds"]),
                                             "--work-dir", str(work / "throughput"), out=work / "throughput.json")
        finally:
            receiver.terminate()
            receiver.wait()

        report["load"]["pipeline"] = load()
        log(f"pipeline: {events} events at {rate}/s (and {events_one} at fan-out 1), published through {publish}")
        snapshot = f"{PYTHON} {Path(aws_usage.__file__).resolve()} snapshot {stack.stack_file}"
        pipeline = run_bench("pipeline", "--stack", str(stack.stack_file), "--events", str(events), "--rate", str(rate),
                             "--events-fanout1", str(events_one), "--events-isolation", str(isolation_events), "--publish", publish, "--payload-bytes", str(payload),
                             "--snapshot-command", snapshot,
                             "--work-dir", str(work / "recordings"), out=work / "pipeline.json")
        report["pipeline"] = pipeline
        report["load"]["after_pipeline"] = load()

        if critical_samples > 0:
            log(f"critical path: {critical_samples} single events")
            report["load"]["critical_path"] = load()
            report["critical_path"] = run_bench("critical-path", "--stack", str(stack.stack_file), "--samples", str(critical_samples),
                                                "--work-dir", str(work / "critical"), out=work / "critical-path.json")
            report["critical_model"] = critical_model(report["critical_path"])

        log("pricing the recorded requests")
        dynamodb = stack.boto3("dynamodb")
        tables = stack.info["tables"]
        table_sizes = aws_usage.TableSizes.scan(dynamodb, list(tables.values()))
        deliveries_table = tables["DeliveriesTable"]
        report["matcher_requests"] = []
        for batch in pipeline["matcher_requests"]:
            recorded = aws_usage.parse_recording(Path(batch["recording"]).read_text())
            usage = aws_usage.tally(recorded, copy.deepcopy(table_sizes), deliveries_table, origins=("function",))
            ops = aws_usage.by_operation(recorded, "dynamodb")
            report["matcher_requests"].append({**batch, "dynamodb_by_operation": ops, "dynamodb_requests": sum(ops.values()),
                                               "rru": usage.rru, "wru": usage.wru, "all": usage.as_dict()})
        memory = {b: f["memory"] for b, f in stack.info["functions"].items()}
        e2e = pipeline["e2e"]
        report["e2e_usage"], report["cost"] = price_window(e2e, deliveries_table, memory, table_sizes)
        grow = max(0, LARGE_PAYLOAD - payload)
        _, report["cost_large_payload"] = price_window(e2e, deliveries_table, memory, table_sizes, grow) if grow else (None, None)
        if pipeline.get("fan_out_1"):
            report["fan_out_1_usage"], report["cost_fan_out_1"] = price_window(pipeline["fan_out_1"], deliveries_table, memory, table_sizes)
        report["cpu_per_1000"] = cpu_per_thousand(e2e)

    text = table(report)
    (OUT / f"bench-{stamp}.json").write_text(json.dumps(report, indent=2, default=str))
    (OUT / "latest.json").write_text(json.dumps(report, indent=2, default=str))
    (OUT / f"bench-{stamp}.txt").write_text(text + "\n")
    print(text)
    print(f"\nJSON: {OUT / f'bench-{stamp}.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
