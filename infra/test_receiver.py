"""`make receiver`'s receiver (infra/receiver.py), run as its own process on a free port."""

from __future__ import annotations

import base64
import datetime
import hashlib
import hmac
import json
import os
import queue
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

RECEIVER = Path(__file__).with_name("receiver.py")
SECRET = "whsec_" + base64.b64encode(bytes(range(32))).decode()
OTHER_SECRET = "whsec_" + base64.b64encode(b"\x07" * 32).decode()
BODY = json.dumps(
    {
        "type": "TODO_CREATED",
        "timestamp": "2026-11-28T10:00:00Z",
        "event_id": "evt-1",
        "company_id": "acme",
        "project_id": "p1",
        "webhook_id": "wh_test",
        "data": {"previousValue": None, "currentValue": {"id": "t1", "title": "Ship it"}},
    },
    separators=(",", ":"),
).encode()


def sign(secret: str, webhook_id: str, timestamp: int, body: bytes) -> str:
    """The delivery signature, by hand: v1,base64(HMAC-SHA256(key, "{id}.{timestamp}.{body}"))."""
    key = base64.b64decode(secret.removeprefix("whsec_"))
    digest = hmac.new(key, f"{webhook_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


class RunningReceiver:
    def __init__(self, *args: str, env: dict | None = None):
        self.proc = subprocess.Popen(
            [sys.executable, str(RECEIVER), "--port", "0", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env={**os.environ, **(env or {})},
        )
        self.lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()
        first = self.next_line()
        assert first.startswith("receiver listening on http://127.0.0.1:"), first
        self.url = first.split()[3]

    def _read(self):
        for line in self.proc.stdout:
            self.lines.put(line.rstrip("\n"))

    def next_line(self, timeout: float = 10) -> str:
        return self.lines.get(timeout=timeout)

    def post(self, body: bytes, headers: dict[str, str]) -> int:
        request = urllib.request.Request(self.url, data=body, method="POST", headers={"content-type": "application/json", **headers})
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status
        except urllib.error.HTTPError as e:
            return e.code

    def stop(self) -> int:
        self.proc.terminate()
        return self.proc.wait(10)


@pytest.fixture
def receiver():
    r = RunningReceiver(env={"WEBHOOK_SECRET": SECRET})
    yield r
    r.stop()


def signed_headers(body: bytes, webhook_id: str = "msg_0123456789abcdefghjkmnpqrs", secret: str = SECRET, timestamp: int | None = None) -> dict[str, str]:
    ts = int(time.time()) if timestamp is None else timestamp
    return {"webhook-id": webhook_id, "webhook-timestamp": str(ts), "webhook-signature": sign(secret, webhook_id, ts, body)}


def test_a_signed_delivery_is_verified_answered_204_and_printed(receiver):
    # GIVEN a delivery signed with the webhook's secret
    headers = signed_headers(BODY)
    # WHEN it is posted
    status = receiver.post(BODY, headers)
    # THEN it is accepted and printed: its webhook-id, type, event, company, project and data
    assert status == 204
    line, data = receiver.next_line(), receiver.next_line()
    assert line.split()[:7] == [
        "verified",
        "msg_0123456789abcdefghjkmnpqrs",
        "TODO_CREATED",
        "event_id=evt-1",
        "company=acme",
        "project=p1",
        "webhook=wh_test",
    ]
    assert json.loads(data.strip().removeprefix("data=")) == {"previousValue": None, "currentValue": {"id": "t1", "title": "Ship it"}}


def test_a_tampered_body_is_refused_401_and_the_reason_printed(receiver):
    # GIVEN a signature over the original body, sent with a changed one
    headers = signed_headers(BODY)
    tampered = BODY.replace(b"Ship it", b"Ship it now")
    # WHEN it is posted
    status = receiver.post(tampered, headers)
    # THEN it is refused, and the reason printed; nothing is printed as verified
    assert status == 401
    line = receiver.next_line()
    assert line.startswith("refused   401 No matching signature found"), line
    assert "webhook-id=msg_0123456789abcdefghjkmnpqrs" in line


def test_signatures_that_cannot_be_trusted_are_refused(receiver):
    cases = {
        "another secret": signed_headers(BODY, secret=OTHER_SECRET),
        "an old timestamp (replay)": signed_headers(BODY, timestamp=int(time.time()) - 3600),
        "no signature": {"webhook-id": "msg_x", "webhook-timestamp": str(int(time.time()))},
    }
    for case, headers in cases.items():
        assert receiver.post(BODY, headers) == 401, case
        assert receiver.next_line().startswith("refused   401 "), case


def test_a_rotation_signature_list_verifies_with_either_secret(receiver):
    # GIVEN a delivery during a secret rotation: one signature per valid secret
    ts = int(time.time())
    webhook_id = "msg_rotation00000000000000000"
    both = f"{sign(OTHER_SECRET, webhook_id, ts, BODY)} {sign(SECRET, webhook_id, ts, BODY)}"
    # WHEN it is posted THEN the receiver's secret's entry verifies it
    assert receiver.post(BODY, {"webhook-id": webhook_id, "webhook-timestamp": str(ts), "webhook-signature": both}) == 204
    assert receiver.next_line().startswith(f"verified  {webhook_id}  TODO_CREATED")


def test_a_redelivery_is_marked_as_seen_before(receiver):
    headers = signed_headers(BODY, webhook_id="msg_again000000000000000000000")
    assert receiver.post(BODY, headers) == 204
    assert "seen before" not in receiver.next_line()
    receiver.next_line()  # data
    assert receiver.post(BODY, signed_headers(BODY, webhook_id="msg_again000000000000000000000")) == 204
    assert "(seen before: a redelivery of the same webhook-id)" in receiver.next_line()


def test_the_library_signature_verifies_and_the_answer_can_be_chosen():
    # GIVEN a receiver told to answer 503 (to watch the service retry)
    from standardwebhooks.webhooks import Webhook

    r = RunningReceiver("--secret", SECRET, "--status", "503")
    try:
        ts = int(time.time())
        signature = Webhook(SECRET).sign("msg_lib", datetime.datetime.fromtimestamp(ts, datetime.timezone.utc), BODY)
        # WHEN a delivery signed by the library itself arrives THEN it verifies, and gets 503
        assert r.post(BODY, {"webhook-id": "msg_lib", "webhook-timestamp": str(ts), "webhook-signature": signature}) == 503
        assert r.next_line().startswith("verified  msg_lib  TODO_CREATED")
    finally:
        assert r.stop() == 0


def test_without_a_secret_it_refuses_to_start():
    env = {k: v for k, v in os.environ.items() if k != "WEBHOOK_SECRET"}
    out = subprocess.run([sys.executable, str(RECEIVER), "--port", "0"], capture_output=True, text=True, env=env, timeout=30)
    assert out.returncode == 2
    assert "WEBHOOK_SECRET" in out.stderr


def test_a_v1a_receiver_verifies_ed25519_signatures_with_the_public_key():
    # GIVEN a receiver given a v1a webhook's public key
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    private, other = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    public = "whpk_" + base64.b64encode(private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)).decode()

    def headers(key, webhook_id: str, ts: int, body: bytes = BODY, extra: str = "") -> dict[str, str]:
        signature = "v1a," + base64.b64encode(key.sign(f"{webhook_id}.{ts}.".encode() + body)).decode()
        return {"webhook-id": webhook_id, "webhook-timestamp": str(ts), "webhook-signature": f"{signature}{extra}"}

    r = RunningReceiver(env={"WEBHOOK_PUBLIC_KEY": public, "WEBHOOK_SECRET": ""})
    try:
        now = int(time.time())
        # WHEN a delivery signed with the private key arrives (after a v1 entry of an overlap) THEN it verifies
        both = headers(private, "msg_v1a", now)
        both["webhook-signature"] = f"{sign(SECRET, 'msg_v1a', now, BODY)} {both['webhook-signature']}"
        assert r.post(BODY, both) == 204
        assert r.next_line().startswith("verified  msg_v1a  TODO_CREATED")
        r.next_line()  # data
        # AND another key, a changed body, an old timestamp or only a v1 signature are refused
        cases = {
            "another key": (BODY, headers(other, "msg_a", now)),
            "a changed body": (BODY.replace(b"Ship it", b"Ship"), headers(private, "msg_b", now)),
            "an old timestamp": (BODY, headers(private, "msg_c", now - 3600)),
            "v1 only": (BODY, signed_headers(BODY)),
        }
        for case, (body, sent) in cases.items():
            assert r.post(body, sent) == 401, case
            line = r.next_line()
            assert line.startswith("refused   401 "), (case, line)
        assert "this receiver verifies v1a" in line
    finally:
        assert r.stop() == 0
