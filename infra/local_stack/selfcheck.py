"""A quick end-to-end check of the local stack itself, with the real function binaries.

Run from the repository root (after `cargo build`):

    PYTHONPATH=infra .venv/bin/python -m local_stack.selfcheck [--bin-dir target/debug]

It starts a private stack (free ports, a temporary state directory) and checks what the
rest of the project relies on: stack.json, `/health` through the emulated HTTP API, the
ingest path to the ingest DLQ, redelivery and redrive on the delivery queue, each process's
environment, restart of a killed process, and that SIGTERM leaves no process behind. It is a
check of the runner, not of the product: the product's tests live in `tests/`.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import boto3
STACK_JSON_KEYS = (
    "api_url", "emulator_url", "region", "ingest_queue_url", "ingest_dlq_url", "delivery_queue_url",
    "delivery_dlq_url", "alerts_topic_arn", "admin_key", "control_url", "account_id", "queues", "tables",
    "functions", "lambda_reserved_env",
)


class Check:
    def __init__(self) -> None:
        self.failures = 0

    def __call__(self, ok: bool, what: str, detail: str = "") -> bool:
        print(f"{'ok  ' if ok else 'FAIL'} {what}{f': {detail}' if detail else ''}", flush=True)
        self.failures += not ok
        return ok


def get_json(url: str, timeout: float = 10) -> tuple[int, dict]:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(url, timeout=timeout) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"null")


def descendants(pid: int) -> set[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    found, todo = set(), [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.add(child)
            todo.append(child)
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        return state != "Z"
    except OSError:
        return False


def environ_of(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes()
    return dict(item.split("=", 1) for item in raw.decode().split("\0") if "=" in item)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bin-dir", default="target/debug")
    parser.add_argument("--template", default="template.yaml")
    args = parser.parse_args()
    check = Check()

    state = Path(tempfile.mkdtemp(prefix="local-stack-check-"))
    env = {**os.environ, "WEBHOOKS_HTTP_PORT": "0", "WEBHOOKS_EMULATOR_PORT": "0"}
    env.pop("WEBHOOKS_ADMIN_KEY", None)
    env.pop("WEBHOOKS_ADMIN_KEY_SHA256", None)
    started = time.monotonic()
    runner = subprocess.Popen(
        [sys.executable, "-m", "local_stack", "--state-dir", str(state), "--bin-dir", args.bin_dir, "--template", args.template],
        env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=open(state / "runner.log", "wb"),
    )
    try:
        stack_file = state / "stack.json"
        while not stack_file.exists() and runner.poll() is None and time.monotonic() - started < 90:
            time.sleep(0.1)
        if not check(stack_file.exists(), "stack.json written", f"{time.monotonic() - started:.1f} s after start"):
            print((state / "runner.log").read_text())
            return 1
        stack = json.loads(stack_file.read_text())
        missing = [k for k in STACK_JSON_KEYS if k not in stack]
        check(not missing, "stack.json has every key", f"missing {missing}" if missing else "")
        lines = [runner.stdout.readline().decode().strip() for _ in range(3)]
        check(stack["api_url"] in lines[0] and stack["admin_key"] in lines[2], "URLs and admin key printed", " | ".join(lines))

        status, body = get_json(stack["api_url"] + "/health")
        check(status == 200 and body == {"status": "ok"}, "GET /health through the HTTP API", f"{status} {body}")
        status, body = get_json(stack["api_url"] + "/no/such/route/at/all")
        check(status in (404, 401, 403), "an unknown path answers", f"{status} {body}")

        sqs = boto3.client(
            "sqs", endpoint_url=stack["emulator_url"], region_name=stack["region"],
            aws_access_key_id="test", aws_secret_access_key="test",
        )
        t0 = time.monotonic()
        sqs.send_message(QueueUrl=stack["ingest_queue_url"], MessageBody="not json")
        got = sqs.receive_message(QueueUrl=stack["ingest_dlq_url"], WaitTimeSeconds=10, MessageAttributeNames=["All"]).get("Messages", [])
        reason = got[0].get("MessageAttributes", {}).get("reason", {}).get("StringValue") if got else None
        check(reason == "invalid_json", "malformed ingest message reaches the ingest DLQ with reason=invalid_json",
              f"{(time.monotonic() - t0) * 1000:.0f} ms" if got else "nothing arrived")

        status, body = get_json(stack["control_url"] + "/status")
        procs = body["functions"]
        check(all(s["ready"] for slots in procs.values() for s in slots), "every process is ready", json.dumps(procs))
        for binary, slots in procs.items():
            expected = stack["functions"][binary]["env"]
            seen = environ_of(slots[0]["pid"])
            rest = {k: v for k, v in seen.items() if k not in stack["lambda_reserved_env"] and k not in stack.get("local_env", {})}
            check(rest == expected, f"{binary}: environment = template env + Lambda's reserved + AWS_ENDPOINT_URL",
                  "" if rest == expected else f"extra {sorted(set(rest) - set(expected))}, differing {sorted(k for k in expected if rest.get(k) != expected[k])}")

        victim = procs["subscriptions"][0]["pid"]
        os.kill(victim, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            slot = get_json(stack["control_url"] + "/status")[1]["functions"]["subscriptions"][0]
            if slot["pid"] not in (None, victim) and slot["ready"]:
                break
            time.sleep(0.05)
        check(slot["pid"] not in (None, victim) and slot["restarts"] >= 1, "a SIGKILLed process is restarted", json.dumps(slot))
        check(get_json(stack["api_url"] + "/health")[0] == 200, "GET /health after the restart")

        # Redelivery and redrive, right after shortening the queue's visibility timeout (the
        # pollers' long polls already waiting must not keep the old one).
        dlq_arn = sqs.get_queue_attributes(QueueUrl=stack["delivery_dlq_url"], AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        sqs.set_queue_attributes(
            QueueUrl=stack["delivery_queue_url"],
            Attributes={"VisibilityTimeout": "1", "RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": 3})},
        )
        t0 = time.monotonic()
        sqs.send_message(QueueUrl=stack["delivery_queue_url"], MessageBody='{"check":"redrive"}')
        got = sqs.receive_message(QueueUrl=stack["delivery_dlq_url"], WaitTimeSeconds=20, MessageSystemAttributeNames=["All"]).get("Messages", [])
        check(bool(got) and got[0]["Body"] == '{"check":"redrive"}', "a failing delivery is received 3 times, then lands in the delivery DLQ",
              f"after {time.monotonic() - t0:.1f} s, ApproximateReceiveCount {got[0]['Attributes'].get('ApproximateReceiveCount')}" if got else "nothing arrived")

        children = descendants(runner.pid)
        t0 = time.monotonic()
        runner.send_signal(signal.SIGTERM)
        try:
            code = runner.wait(timeout=10)
        except subprocess.TimeoutExpired:
            code = None
        check(code == 0, "SIGTERM stops the runner with status 0", f"{code} after {time.monotonic() - t0:.1f} s")
        left = sorted(p for p in children if alive(p))
        check(not left, "no process is left behind", f"{len(children)} children checked" if not left else f"alive: {left}")
        check(not stack_file.exists(), "stack.json removed on a clean stop")
    finally:
        if runner.poll() is None:
            runner.kill()
            runner.wait()
    print(f"{'all checks passed' if not check.failures else f'{check.failures} checks failed'} (logs: {state})")
    return 1 if check.failures else 0


if __name__ == "__main__":
    sys.exit(main())
