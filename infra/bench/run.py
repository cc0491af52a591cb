"""`make bench`: speed and cost of the webhook service, measured, in one table.

Runs, in this order (each figure a median over repeated runs, with min and max; each ratio
between figures of the same run):

1. sizes of the release binaries (native; arm64 with cargo-lambda when `make package`'s
   tooling is installed in .venv-sam) and cold starts of each function;
2. matching: criterion's samples of `bench/benches/matching.rs`, and the matcher's DynamoDB
   requests per batch, recorded by the emulator;
3. delivery throughput next to `wrk` at the same concurrency against the same receiver;
4. the pipeline end to end on a local stack of the release binaries;
5. the cost per million deliveries at AWS list prices, from the requests recorded in 4.

Writes the report as JSON to target/bench/bench-<UTC time>.json (and target/bench/latest.json)
and prints the table. The release binaries must be built first (the Makefile target does it).

Settings (environment): BENCH_EVENTS (1000), BENCH_RATE (events per second, 1; each event
fans out to 10 webhooks, and the emulator keeps up with about 20 deliveries a second on two
cores, so a much faster rate measures its queue, not the pipeline),
BENCH_COLDSTART_RUNS (20), BENCH_ROUNDS (5), BENCH_SECONDS (per throughput figure, 5),
BENCH_ARM64 (auto; 0 = skip the arm64 build), BENCH_CRITERION (1; 0 = reuse the last samples).
`run.py --add-matching target/bench/bench-<time>.json` runs only the criterion part into an
existing report and prints its table again.
"""

from __future__ import annotations

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
RELEASE = ROOT / "target" / "release"
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
}
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
            arm[b] = (ROOT / "target" / "lambda" / b / "bootstrap").stat().st_size
        result["arm64_bytes"] = arm
    return result


# ---------------------------------------------------------------------------- 2. criterion


def criterion() -> dict:
    if os.environ.get("BENCH_CRITERION", "1") != "0":
        subprocess.run(["cargo", "bench", "-p", "webhooks-bench", "--bench", "matching"], cwd=ROOT, check=True)
    base = ROOT / "target" / "criterion"
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


def invocations(runner_log: Path, start: float, end: float) -> dict[str, list[int]]:
    """Batch sizes of the event source mappings' invocations within [start, end] (Unix time),
    from the local stack's verbose log ("HH:MM:SS.mmm local-stack matcher.Ingest: batch of 3 -> ok")."""
    pattern = re.compile(r"^(\d\d):(\d\d):(\d\d)\.(\d{3}) local-stack (\w+)\.\w+: batch of (\d+) -> ok")
    day = datetime.datetime.fromtimestamp(start).replace(hour=0, minute=0, second=0, microsecond=0).timestamp()
    out: dict[str, list[int]] = {}
    for line in runner_log.read_text(errors="replace").splitlines():
        m = pattern.match(line)
        if not m:
            continue
        h, mi, s, msec, function, size = m.groups()
        at = day + int(h) * 3600 + int(mi) * 60 + int(s) + int(msec) / 1000
        if at < start - 1:
            at += 86400  # the run crossed midnight
        if start <= at <= end:
            out.setdefault(function, []).append(int(size))
    return out


# ---------------------------------------------------------------------------- 5. cost


def cost(pipeline: dict, usage: aws_usage.Tally, batches: dict[str, list[int]], memory: dict[str, int], deliveries: int) -> dict:
    per = 1e6 / deliveries
    # Billed durations: each invocation's own clock ("invocation timed" lines), rounded up to
    # the millisecond as Lambda does.
    times = pipeline["e2e"]["invocations"]
    gb_s = {f: times[f]["billed_ms"] / 1000 * memory[f] / 1024 for f in batches if f in times}
    invocations_total = sum(len(v) for v in batches.values())
    log_bytes = sum(pipeline["e2e"]["log_bytes"].values()) + PLATFORM_LOG_BYTES * invocations_total
    lines = {
        "lambda_requests": invocations_total * PRICES["lambda_request"] * per,
        "lambda_gb_seconds": sum(gb_s.values()) * PRICES["lambda_gb_second"] * per,
        "sqs": usage.sqs_units * PRICES["sqs_request"] * per,
        "dynamodb_writes": usage.wru * PRICES["dynamodb_wru"] * per,
        "dynamodb_reads": usage.rru * PRICES["dynamodb_rru"] * per,
        "kms": usage.kms * PRICES["kms_request"] * per,
        "sns": usage.sns * PRICES["sns_publish"] * per,
    }
    with_log = sum(lines.values())
    # Not in the total: the GB-seconds if every AWS call had taken AWS_CALL_MS instead of the
    # emulator's time (our code's time measured, the calls counted; concurrent calls are
    # counted one after the other, so this errs high).
    gb_s_at_aws = {f: (times[f]["total_duration_ms"] - times[f]["total_aws_ms"] + times[f]["total_aws_calls"] * AWS_CALL_MS)
                   / 1000 * memory[f] / 1024 for f in batches if f in times}
    saved = usage.success_log_wru * PRICES["dynamodb_wru"] * per
    return {
        "per_million_deliveries": lines,
        "total_with_success_log": with_log,
        "total_without_success_log": with_log - saved,
        "success_log_share": saved / with_log if with_log else 0,
        "cloudwatch_logs_not_in_target": log_bytes / 1e9 * PRICES["logs_gb"] * per,
        "lambda_gb_seconds_at_aws_latency_not_in_total": sum(gb_s_at_aws.values()) * PRICES["lambda_gb_second"] * per,
        "units_per_delivery": {
            "lambda_invocations": invocations_total / deliveries,
            "lambda_gb_seconds": {f: v / deliveries for f, v in gb_s.items()},
            "sqs_requests": usage.sqs_units / deliveries,
            "dynamodb_wru": usage.wru / deliveries,
            "dynamodb_wru_without_success_log": (usage.wru - usage.success_log_wru) / deliveries,
            "dynamodb_rru": usage.rru / deliveries,
            "kms_requests": usage.kms / deliveries,
            "log_bytes": log_bytes / deliveries,
        },
        "mean_batch": {f: (sum(v) / len(v) if v else 0) for f, v in batches.items()},
    }


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
    add(f"4 ingest->receiver p50 (ms), {lat['count']:,} deliveries of {e['events']:,} events at {fmt(e['rate_per_s'], 1)}/s", lat["p50"], "<= 100 ms", verdict(lat["p50"], TARGETS["e2e_p50_ms"], unit=" ms"))
    add("4 ingest->receiver p90 (ms)", lat["p90"])
    add("4 ingest->receiver p99 (ms)", lat["p99"], "<= 300 ms", verdict(lat["p99"], TARGETS["e2e_p99_ms"], unit=" ms"))
    add("4 ingest->last of the event's 10 webhooks p50 / p99 (ms)", f"{fmt(e['event_latency_ms']['p50'])} / {fmt(e['event_latency_ms']['p99'])}")
    inv = e["invocations"]
    for f in ("matcher", "delivery"):
        t = inv[f]
        add(f"4 {f} invocation (ms, n={t['count']:,}): duration; of which AWS calls {fmt(t['aws_ms']['median'])} "
            f"(median of {fmt(t['aws_calls']['median'], 0)} calls)", t["duration_ms"])
    total = sum(inv[f]["total_duration_ms"] for f in ("matcher", "delivery"))
    aws = sum(inv[f]["total_aws_ms"] for f in ("matcher", "delivery"))
    # The delivery's invocation goes on after the POST (its log writes), so the functions' time
    # is split, not the latency.
    add("4 share of the functions' time: emulator calls / our code (all invocations)",
        f"{aws / total:.0%} / {1 - aws / total:.0%}" if total else "-")

    c = report["cost"]
    add("5 cost per 1M deliveries, with success log (USD)", c["total_with_success_log"], "<= $1.00", verdict(c["total_with_success_log"], TARGETS["cost_with_log"], unit=" $"), 3)
    add("5 cost per 1M deliveries, without success log (USD)", c["total_without_success_log"], "<= $0.35", verdict(c["total_without_success_log"], TARGETS["cost_without_log"], unit=" $"), 3)
    for k, v in c["per_million_deliveries"].items():
        add(f"5   {k}", v, "", "", 3)
    add("5   + CloudWatch Logs ingestion (not in the target)", c["cloudwatch_logs_not_in_target"], "", "", 3)
    add(f"5   lambda_gb_seconds if each AWS call took {AWS_CALL_MS} ms (estimate, not in the total)",
        c["lambda_gb_seconds_at_aws_latency_not_in_total"], "", "", 3)

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
    rate = env_number("BENCH_RATE", 1)
    report["settings"] = {"events": events, "rate_per_s": rate, "coldstart_runs": int(env_number("BENCH_COLDSTART_RUNS", 20)),
                          "rounds": int(env_number("BENCH_ROUNDS", 5)), "seconds": env_number("BENCH_SECONDS", 5),
                          "retry_schedule": "2s", "processes_per_function": 2}

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
        log(f"pipeline: {events} events at {rate}/s")
        pipeline = run_bench("pipeline", "--stack", str(stack.stack_file), "--events", str(events), "--rate", str(rate),
                             "--work-dir", str(work / "recordings"), out=work / "pipeline.json")
        report["pipeline"] = pipeline
        report["load"]["after_pipeline"] = load()

        log("pricing the recorded requests")
        dynamodb = stack.boto3("dynamodb")
        tables = stack.info["tables"]
        table_sizes = aws_usage.TableSizes.scan(dynamodb, list(tables.values()))
        deliveries_table = tables["DeliveriesTable"]
        report["matcher_requests"] = []
        for batch in pipeline["matcher_requests"]:
            recorded = aws_usage.parse_recording(Path(batch["recording"]).read_text())
            usage = aws_usage.tally(recorded, table_sizes, deliveries_table, origins=("function",))
            ops = aws_usage.by_operation(recorded, "dynamodb")
            report["matcher_requests"].append({**batch, "dynamodb_by_operation": ops, "dynamodb_requests": sum(ops.values()),
                                               "rru": usage.rru, "wru": usage.wru, "all": usage.as_dict()})
        e2e = pipeline["e2e"]
        recorded = aws_usage.parse_recording(Path(e2e["recording"]).read_text())
        usage = aws_usage.tally(recorded, table_sizes, deliveries_table)
        batches = invocations(work / "stack" / "runner.log", e2e["started_unix"], e2e["ended_unix"])
        memory = {b: f["memory"] for b, f in stack.info["functions"].items()}
        report["e2e_usage"] = {**usage.as_dict(), "invocations": {f: len(v) for f, v in batches.items()}}
        report["cost"] = cost(pipeline, usage, batches, memory, e2e["pairs_delivered"])

    text = table(report)
    (OUT / f"bench-{stamp}.json").write_text(json.dumps(report, indent=2, default=str))
    (OUT / "latest.json").write_text(json.dumps(report, indent=2, default=str))
    (OUT / f"bench-{stamp}.txt").write_text(text + "\n")
    print(text)
    print(f"\nJSON: {OUT / f'bench-{stamp}.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
