"""Schemathesis against the API of a running local stack, twice: with a customer key, then with
the admin key. It reads `GET /v1/openapi.json` (the document the API serves), generates valid
and invalid requests from it, and checks every answer against it (infra/schemathesis.toml).

Before that it makes what the operations' path ids name: keys, webhooks pointing at a receiver
of its own (answering 204), and one delivered event, so that `redeliver` has a message id.

    .venv/bin/python infra/api_fuzz.py <stack.json>

Exit status: schemathesis's (0 = no failure) or 1 when the set-up failed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

CONFIG = Path(__file__).with_name("schemathesis.toml")


class Receiver(BaseHTTPRequestHandler):
    """A webhook receiver that takes everything."""

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args) -> None:
        pass


def call(api: str, method: str, path: str, key: str, body=None, content_type: str = "application/json"):
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(api + path, data=data, method=method)
    request.add_header("Authorization", f"Bearer {key}")
    if data is not None:
        request.add_header("Content-Type", content_type)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            text = response.read()
            return response.status, json.loads(text) if text else None
    except urllib.error.HTTPError as e:
        raise SystemExit(f"set-up: {method} {path} answered {e.code}: {e.read()[:300]!r}") from None


def setup(api: str, admin: str, receiver_url: str) -> dict[str, str]:
    def key(name: str, companies: list[str]) -> dict:
        body = {"name": name, "companies": companies, "permissions": ["manage", "publish"]}
        return call(api, "POST", "/v1/api-keys", admin, body)[1]

    customer = key("fuzz customer", ["fuzz-co", "fuzz-co-2"])
    target = key("fuzz target", ["fuzz-co"])
    doomed = key("fuzz doomed", ["fuzz-co"])

    def webhook(name: str) -> str:
        body = {"url": receiver_url, "name": name, "scopes": [{"company_id": "fuzz-co", "project_id": "p1"}]}
        return call(api, "POST", "/v1/webhooks", customer["key"], body)[1]["id"]

    ids = {name: webhook(name) for name in ("customer", "customer doomed", "admin", "admin doomed")}
    event = {
        "specversion": "1.0",
        "id": "fuzz-1",
        "source": "/fuzz",
        "type": "TODO_CREATED",
        "companyid": "fuzz-co",
        "projectid": "p1",
        "data": {"title": "seed"},
    }
    call(api, "POST", "/v1/events", customer["key"], event, "application/cloudevents+json")
    # The delivery log names the message id once the event went through the pipeline.
    deadline = time.monotonic() + 60
    message_ids: dict[str, str] = {}
    while len(message_ids) < 2:
        for name in ("customer", "admin"):
            entries = call(api, "GET", f"/v1/webhooks/{ids[name]}/deliveries", customer["key"])[1]["data"]
            if entries:
                message_ids[name] = entries[0]["webhook_message_id"]
        if time.monotonic() > deadline:
            raise SystemExit("set-up: the seed event was not delivered within 60 s")
        time.sleep(0.2)
    return {
        "customer_key": customer["key"],
        "target_key_id": target["id"],
        "doomed_key_id": doomed["id"],
        "customer_webhook": ids["customer"],
        "customer_doomed": ids["customer doomed"],
        "customer_message": message_ids["customer"],
        "admin_webhook": ids["admin"],
        "admin_doomed": ids["admin doomed"],
        "admin_message": message_ids["admin"],
    }


# An id in a path names something set-up made, so that the phases testing one operation at a
# time reach its logic instead of a 404; deletions get ids of their own, made to be deleted (the
# phases also reuse ids they saw in answers, so an unpinned DELETE could remove what the others
# need). Not in the stateful phase: there a pinned id would override the ids it follows from
# one response to the next request.
PINS = r"""
[[operations]]
include-path-regex = "^/v1/webhooks/\\{id\\}"
exclude-method = "DELETE"
parameters = { "path.id" = "${FUZZ_WEBHOOK_ID}", "path.message_id" = "${FUZZ_MESSAGE_ID}" }

[[operations]]
include-path-regex = "^/v1/api-keys/\\{id\\}"
exclude-method = "DELETE"
parameters = { "path.id" = "${FUZZ_TARGET_KEY_ID}" }

[[operations]]
include-name = "DELETE /v1/webhooks/{id}"
parameters = { "path.id" = "${FUZZ_DOOMED_WEBHOOK_ID}" }

[[operations]]
include-name = "DELETE /v1/api-keys/{id}"
parameters = { "path.id" = "${FUZZ_DOOMED_KEY_ID}" }
"""


def schemathesis(api: str, who: str, env: dict[str, str], workdir: Path) -> int:
    pinned = workdir / "schemathesis-pinned.toml"
    pinned.write_text(CONFIG.read_text() + PINS)
    status = 0
    for config, phases in ((pinned, "examples,coverage,fuzzing"), (CONFIG, "stateful")):
        print(f"\n=== schemathesis, {who}, {phases} ===", flush=True)
        command = [
            sys.executable, __file__, "--schemathesis", "--config-file", str(config),
            "run", f"{api}/v1/openapi.json", "--phases", phases, "--no-color",
        ]
        status = subprocess.call(command, env={**os.environ, **env}) or status
    return status


def run_schemathesis_cli(args: list[str]) -> None:
    # CPython 3.11 before 3.11.8 can raise SystemError ("AST constructor recursion depth
    # mismatch") when Hypothesis parses a module's source only to describe a filter for its
    # own repr. The description is cosmetic: fall back to a plain one.
    from hypothesis.internal import lambda_sources

    describe = lambda_sources._lambda_description

    def tolerant(f, *a, **k):
        try:
            return describe(f, *a, **k)
        except SystemError:
            return "lambda"

    lambda_sources._lambda_description = tolerant
    from schemathesis.cli import schemathesis as cli

    cli.main(args=args, prog_name="schemathesis")


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "--schemathesis":
        run_schemathesis_cli(sys.argv[2:])
        return 0
    stack = json.loads(Path(sys.argv[1]).read_text())
    api, admin = stack["api_url"], stack["admin_key"]
    server = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    made = setup(api, admin, f"http://127.0.0.1:{server.server_address[1]}/hook")
    common = {"FUZZ_TARGET_KEY_ID": made["target_key_id"], "FUZZ_DOOMED_KEY_ID": made["doomed_key_id"]}
    workdir = Path(sys.argv[1]).parent
    customer = schemathesis(api, "customer key", {
        **common,
        "FUZZ_BEARER": made["customer_key"],
        "FUZZ_WEBHOOK_ID": made["customer_webhook"],
        "FUZZ_DOOMED_WEBHOOK_ID": made["customer_doomed"],
        "FUZZ_MESSAGE_ID": made["customer_message"],
    }, workdir)
    admin_status = schemathesis(api, "admin key", {
        **common,
        "FUZZ_BEARER": admin,
        "FUZZ_WEBHOOK_ID": made["admin_webhook"],
        "FUZZ_DOOMED_WEBHOOK_ID": made["admin_doomed"],
        "FUZZ_MESSAGE_ID": made["admin_message"],
    }, workdir)
    server.shutdown()
    return customer or admin_status


if __name__ == "__main__":
    sys.exit(main())
