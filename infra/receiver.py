"""A webhook receiver for local use: verifies every delivery and prints it.

`make receiver` runs it on http://127.0.0.1:4000 (RECEIVER_PORT, or --port; 0 = any free port).
It verifies each request with the webhook's secret (WEBHOOK_SECRET, or --secret: the `whsec_...`
shown when the webhook was created or its secret rotated) using the official Standard Webhooks
library, exactly as a customer's receiver would, and prints what it got:

    verified  msg_...  TODO_CREATED  event_id=evt-1  company=acme  project=p1  webhook=wh_...
              data={"currentValue": {...}}

A verified delivery is answered 204 (or --status / RECEIVER_STATUS, to see what other answers
cause); a missing, stale or wrong signature 401, a verified body that is not a JSON object 400,
anything but POST 405. Every refusal is printed with its reason. It listens on loopback only and
needs no network beyond it.

For a `v1a` webhook (Ed25519), give its public key instead (WEBHOOK_PUBLIC_KEY, or --public-key:
the `whpk_...` the webhook shows): the `v1a` entries of `webhook-signature` are checked with it
(the `cryptography` package's Ed25519), with the same 5-minute timestamp tolerance.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import json
import os
import signal
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

DEFAULT_PORT = 4000
# A delivery body is one event of at most 256 KiB plus its envelope: anything far larger is not
# one of ours, and reading it whole would only cost memory.
MAX_BODY = 1024 * 1024
# A webhook-id seen again is a redelivery (at least once): remembered to say so, within bounds.
SEEN_LIMIT = 100_000
# How far `webhook-timestamp` may be from the clock: the Standard Webhooks libraries' tolerance,
# which refuses replays of a captured request.
TIMESTAMP_TOLERANCE_SECONDS = 5 * 60
PUBLIC_KEY_PREFIX = "whpk_"


class PublicKeyVerifier:
    """Standard Webhooks `v1a`: an Ed25519 signature of "{webhook-id}.{webhook-timestamp}.{body}"
    under the webhook's public key, among the space-separated entries of `webhook-signature`."""

    def __init__(self, public_key: str):
        if not public_key.startswith(PUBLIC_KEY_PREFIX):
            raise ValueError("a public key starts with whpk_")
        self.key = Ed25519PublicKey.from_public_bytes(base64.b64decode(public_key[len(PUBLIC_KEY_PREFIX) :], validate=True))

    def verify(self, raw: bytes, headers: dict, json_parse: bool = False) -> bytes:
        try:
            msg_id, stamp, signatures = headers["webhook-id"], headers["webhook-timestamp"], headers["webhook-signature"]
        except KeyError:
            raise WebhookVerificationError("Missing required headers") from None
        if not stamp.isdigit():
            raise WebhookVerificationError("Invalid Signature Headers")
        if abs(int(stamp) - time.time()) > TIMESTAMP_TOLERANCE_SECONDS:
            raise WebhookVerificationError("Message timestamp too old" if int(stamp) < time.time() else "Message timestamp too new")
        signed = f"{msg_id}.{stamp}.".encode() + raw
        for entry in signatures.split():
            version, _, signature = entry.partition(",")
            if version != "v1a":
                continue
            try:
                self.key.verify(base64.b64decode(signature, validate=True), signed)
                return raw
            except (InvalidSignature, binascii.Error):
                continue
        raise WebhookVerificationError("No matching signature found")


class Receiver:
    """What the handler needs: the verifier, the answer to give, and the ids already seen."""

    def __init__(self, secret: str, status: int, out=sys.stdout):
        # A `whpk_` public key verifies `v1a` signatures; a `whsec_` secret, `v1` ones.
        self.version = "v1a" if secret.startswith(PUBLIC_KEY_PREFIX) else "v1"
        self.webhook = PublicKeyVerifier(secret) if self.version == "v1a" else Webhook(secret)
        self.status = status
        self.out = out
        self._seen: set[str] = set()
        self._lock = threading.Lock()

    def print(self, text: str) -> None:
        with self._lock:
            print(text, file=self.out, flush=True)

    def first_time(self, webhook_id: str) -> bool:
        with self._lock:
            if webhook_id in self._seen:
                return False
            if len(self._seen) >= SEEN_LIMIT:
                self._seen.clear()
            self._seen.add(webhook_id)
            return True


def shown(value) -> str:
    return "null" if value is None else str(value)


def describe(body: dict, headers, first_time: bool) -> str:
    """The printed form of a verified delivery: its identity on one line, its data on the next."""
    fields = [
        "verified",
        headers.get("webhook-id", ""),
        shown(body.get("type")),
        f"event_id={shown(body.get('event_id'))}",
        f"company={shown(body.get('company_id'))}",
        f"project={shown(body.get('project_id'))}",
        f"webhook={shown(body.get('webhook_id'))}",
        f"timestamp={shown(body.get('timestamp'))}",
    ]
    if not first_time:
        fields.append("(seen before: a redelivery of the same webhook-id)")
    data = json.dumps(body.get("data"), ensure_ascii=False, separators=(", ", ": "))
    return "  ".join(fields) + f"\n          data={data}"


def refusal_reason(error: WebhookVerificationError, signature_header: str, version: str = "v1") -> str:
    reason = str(error) or "signature does not verify"
    versions = {entry.split(",", 1)[0] for entry in signature_header.split() if "," in entry}
    if versions and version not in versions:
        scheme = "v1a, Ed25519 with WEBHOOK_PUBLIC_KEY" if version == "v1a" else "v1, HMAC with WEBHOOK_SECRET"
        reason += f" (signature versions {', '.join(sorted(versions))}: this receiver verifies {scheme})"
    elif reason == "No matching signature found":
        reason += " (wrong public key, or the body was changed)" if version == "v1a" else " (wrong secret, or the body was changed)"
    return reason


def make_handler(receiver: Receiver):
    class Handler(BaseHTTPRequestHandler):
        # Keep-alive, as the delivery client pools its connections.
        protocol_version = "HTTP/1.1"
        server_version = "webhooks-receiver"
        sys_version = ""

        def do_POST(self):  # noqa: N802 (the http.server naming)
            length = self.headers.get("content-length")
            if length is None or not length.isdigit():
                return self.refuse(411, "no content-length")
            if int(length) > MAX_BODY:
                self.close_connection = True
                return self.refuse(413, f"body of {length} bytes, over {MAX_BODY}")
            raw = self.rfile.read(int(length))
            headers = {k.lower(): v for k, v in self.headers.items()}
            try:
                # The raw bytes, exactly as received: the signature covers them, not a re-encoding.
                body = receiver.webhook.verify(raw, headers, json_parse=False)
            except WebhookVerificationError as e:
                return self.refuse(401, refusal_reason(e, headers.get("webhook-signature", ""), receiver.version), headers)
            try:
                body = json.loads(raw)
            except ValueError:
                return self.refuse(400, "verified, but the body is not JSON", headers)
            if not isinstance(body, dict):
                return self.refuse(400, "verified, but the body is not a JSON object", headers)
            receiver.print(describe(body, headers, receiver.first_time(headers["webhook-id"])))
            self.answer(receiver.status)

        def do_GET(self):  # noqa: N802
            self.refuse(405, f"{self.command} {self.path}: deliveries are POSTs")

        do_PUT = do_PATCH = do_DELETE = do_HEAD = do_GET  # noqa: N815

        def refuse(self, status: int, reason: str, headers=None) -> None:
            webhook_id = (headers or {}).get("webhook-id")
            of = f"  webhook-id={webhook_id}" if webhook_id else ""
            receiver.print(f"refused   {status} {reason}{of}")
            self.answer(status)

        def answer(self, status: int) -> None:
            self.send_response(status)
            if status == 405:
                self.send_header("allow", "POST")
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, format, *args):  # noqa: A002 (the http.server signature)
            pass  # one line per request is printed above; no access log on top

    return Handler


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Verify webhook deliveries with the webhook's secret and print them.")
    parser.add_argument("--secret", default=os.environ.get("WEBHOOK_SECRET"), help="the webhook's secret, whsec_... (default: $WEBHOOK_SECRET)")
    parser.add_argument("--public-key", default=os.environ.get("WEBHOOK_PUBLIC_KEY"), help="a v1a webhook's public key, whpk_... (default: $WEBHOOK_PUBLIC_KEY); used instead of the secret")
    parser.add_argument("--port", type=int, default=int(os.environ.get("RECEIVER_PORT") or DEFAULT_PORT), help=f"port on 127.0.0.1 (default: $RECEIVER_PORT or {DEFAULT_PORT}; 0 = any free port)")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)")
    parser.add_argument("--status", type=int, default=int(os.environ.get("RECEIVER_STATUS") or 204), help="answer to a verified delivery (default: $RECEIVER_STATUS or 204)")
    args = parser.parse_args(argv)
    if args.public_key:
        args.secret = args.public_key
    if not args.secret:
        parser.error("no secret: export WEBHOOK_SECRET=whsec_... (shown once when the webhook was created) or pass --secret; for a v1a webhook, WEBHOOK_PUBLIC_KEY=whpk_...")
    if not 200 <= args.status <= 599:
        parser.error("--status must be an HTTP status code, 200 to 599")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        receiver = Receiver(args.secret, args.status)
    except Exception as e:  # an empty or non-base64 secret
        print(f"receiver: the secret is not a whsec_ secret (or the public key not a whpk_ key): {e}", file=sys.stderr)
        return 2
    server = ThreadingHTTPServer((args.host, args.port), make_handler(receiver))
    server.daemon_threads = True
    host, port = server.server_address[:2]
    url = f"http://{host}:{port}/webhooks"
    receiver.print(f"receiver listening on {url} (any path); verified deliveries are answered {args.status}")

    def stop(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
