"""A proxy between the functions and the AWS emulator: as strict as AWS, and faults on demand.

It runs in every local stack. Whatever the fault rate, it refuses what AWS refuses and the
emulator accepts (strict.py): DynamoDB items over 400 KB, nesting over 32 levels, numbers
out of range; SQS bodies with characters SQS refuses, visibility beyond 12 h from receipt;
transactions overlapping on an item (TransactionCanceledException, `TransactionConflict`)
and writes to an item a transaction holds (TransactionConflictException). Only the requests
those checks concern are parsed; the rest is forwarded as it came.

AWS fails now and then: a call answers 500, or is throttled, or (the nastiest case) takes
effect and still answers an error, so that the caller retries something that already
happened. The emulator never does any of this. With `WEBHOOKS_LOCAL_FAULT_RATE` above 0, for
that fraction of the requests (the pollers' ReceiveMessage excepted) it answers as AWS does
under faults:

* `error` (not forwarded): HTTP 500 with the service's internal error (`InternalServerError`
  for DynamoDB, `InternalError` for SQS, `KMSInternalException` for KMS, `InternalFailure` /
  `InternalError` in the query protocol's XML for SNS);
* `throttle` (not forwarded): HTTP 400 with a throttling code both AWS SDKs (Rust's
  `THROTTLING_ERRORS`, botocore's `_THROTTLED_ERROR_CODES`) retry with backoff:
  `ProvisionedThroughputExceededException` / `ThrottlingException` for DynamoDB,
  `RequestThrottled` / `ThrottlingException` for SQS (with the `x-amzn-query-error` header of
  SQS's query-compatible JSON protocol), `ThrottlingException` for KMS, `Throttling` for the
  query protocol;
* `after` (forwarded): the emulator did the work, the caller sees the 500 of `error`. A
  SendMessage that happened but looks failed must lead to a duplicate, never a loss.

DynamoDB's `TransactWriteItems` is idempotent for its `ClientRequestToken` (10 minutes), which
the SDKs set once per call and keep across retries; the emulator ignores the token, so the
proxy remembers the answer to each token it forwarded and gives it again to a retry, as
DynamoDB would (otherwise an `after` fault there would fail a write that AWS reports done).

The emulator's TransactWriteItems is not isolated: it snapshots every table it touches and,
when the transaction is cancelled (a condition failed), puts the snapshots back, silently
undoing writes that other requests made to those tables meanwhile (moto 5.2.5; seen here as
acknowledged PutItems that vanished). DynamoDB transactions are isolated, so the proxy runs a
TransactWriteItems alone: it waits for the DynamoDB requests under way and holds new ones
back until it is answered (a readers-writer lock served in arrival order).

Responses are shaped per protocol (JSON `__type` + `message` for `application/x-amz-json-*`
requests, `<ErrorResponse>` XML for form-encoded query requests) so the faults exercise the
callers' retry paths rather than their parsers. The service is read from the SigV4
credential scope, the operation from `X-Amz-Target` or the query `Action`.

Decisions are drawn from `random.Random(seed)` in arrival order: one draw decides whether a
request fails, a second its kind. `GET /_faults` answers what was injected (by kind and by
service operation); `POST /_faults` with `{"rate": r}` (and optionally `"after_share"`)
changes the rate at run time, e.g. to set a stack up without faults and then switch them on.

Standard library only: a threaded server, one keep-alive upstream connection per client
connection. Runnable on its own:

    PYTHONPATH=infra .venv/bin/python -m local_stack.fault_proxy --upstream http://127.0.0.1:4566 --rate 0.05
"""

from __future__ import annotations

import argparse
import collections
import http.client
import json
import logging
import os
import random
import re
import sys
import threading
import time
import urllib.parse
import uuid
from dataclasses import dataclass
from pathlib import Path
from xml.sax.saxutils import escape

from . import httputil, strict

log = logging.getLogger("local_stack")

RATE_VARIABLE = "WEBHOOKS_LOCAL_FAULT_RATE"
SEED_VARIABLE = "WEBHOOKS_LOCAL_FAULT_SEED"
AFTER_VARIABLE = "WEBHOOKS_LOCAL_FAULT_AFTER"
DEFAULT_SEED = 1
# Of the injected faults, this share happens after forwarding (the call took effect); the rest
# is split evenly between errors and throttles.
DEFAULT_AFTER_SHARE = 0.2
FAULTS_PATH = "/_faults"
MAX_BODY = 16 * 1024 * 1024  # SQS batches are at most 1 MiB, DynamoDB items 400 KiB
UPSTREAM_TIMEOUT = 60.0
KINDS = ("error", "throttle", "after")
# Only the pollers (AWS's side of an event source mapping) receive: never faulted.
EXEMPT_FROM_FAULTS = {("sqs", "ReceiveMessage")}
# The requests the strictness checks read; everything else is forwarded unparsed.
STRICT_OPERATIONS = {
    "dynamodb": {"PutItem", "UpdateItem", "DeleteItem", "TransactWriteItems", "BatchWriteItem"},
    "sqs": {"SendMessage", "SendMessageBatch", "ChangeMessageVisibility", "ChangeMessageVisibilityBatch", "DeleteMessage", "DeleteMessageBatch"},
}
KEY_SCHEMA_TIMEOUT = 10.0
IDEMPOTENCY_WINDOW = 600.0  # DynamoDB keeps a ClientRequestToken this long
# Hop-by-hop headers and the ones http.server writes itself.
_SKIPPED_RESPONSE_HEADERS = {"connection", "keep-alive", "transfer-encoding", "content-length", "server", "date"}
_SKIPPED_REQUEST_HEADERS = {"connection", "keep-alive", "proxy-connection", "transfer-encoding", "content-length", "host"}
_SCOPE = re.compile(r"Credential=[^/]+/[^/]+/[^/]+/([^/]+)/aws4_request")


@dataclass
class FaultSettings:
    rate: float
    seed: int = DEFAULT_SEED
    after_share: float = DEFAULT_AFTER_SHARE


def _fraction(environ: dict[str, str], name: str, default: float) -> float:
    raw = environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"{name} must be a fraction between 0 and 1, got {raw!r}") from None
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} must be a fraction between 0 and 1, got {raw!r}")
    return value


def settings_from_env(environ: dict[str, str]) -> FaultSettings | None:
    """The proxy's settings, or None when faults are off (rate unset or 0)."""
    rate = _fraction(environ, RATE_VARIABLE, 0.0)
    after = _fraction(environ, AFTER_VARIABLE, DEFAULT_AFTER_SHARE)
    raw_seed = environ.get(SEED_VARIABLE, "").strip()
    try:
        seed = int(raw_seed) if raw_seed else DEFAULT_SEED
    except ValueError:
        raise ValueError(f"{SEED_VARIABLE} must be a whole number, got {raw_seed!r}") from None
    return FaultSettings(rate=rate, seed=seed, after_share=after) if rate > 0 else None


# ------------------------------------------------------------------------- fault responses


@dataclass
class Call:
    service: str  # dynamodb, sqs, kms, sns, ... ("unknown" when unsigned)
    operation: str
    json_protocol: bool
    json_version: str  # "1.0" or "1.1" (JSON protocols only)


def describe(headers, body: bytes) -> Call:
    content_type = headers.get("Content-Type", "")
    scope = _SCOPE.search(headers.get("Authorization", ""))
    target = headers.get("X-Amz-Target", "")
    service = scope.group(1) if scope else "unknown"
    if content_type.startswith("application/x-amz-json"):
        version = content_type.rsplit("-", 1)[-1].split(";", 1)[0].strip() or "1.0"
        return Call(service, target.rsplit(".", 1)[-1] or "?", True, version)
    action = urllib.parse.parse_qs(body.decode("utf-8", "replace")).get("Action", ["?"])[0]
    return Call(service, action, False, "")


def _json_error(call: Call, status: int, code: str, message: str, query_code: str | None = None) -> tuple[int, list[tuple[str, str]], bytes]:
    headers = [("Content-Type", f"application/x-amz-json-{call.json_version}"), ("x-amzn-RequestId", str(uuid.uuid4()))]
    if query_code is not None:  # SQS's JSON protocol is query compatible: this header carries the old code
        headers.append(("x-amzn-query-error", query_code))
    return status, headers, json.dumps({"__type": code, "message": message}).encode()


def _json_body(call: Call, status: int, document: dict) -> tuple[int, list[tuple[str, str]], bytes]:
    headers = [("Content-Type", f"application/x-amz-json-{call.json_version}"), ("x-amzn-RequestId", str(uuid.uuid4()))]
    return status, headers, json.dumps(document).encode()


def _int(value) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _xml_error(status: int, kind: str, code: str, message: str) -> tuple[int, list[tuple[str, str]], bytes]:
    request_id = str(uuid.uuid4())
    body = (
        "<?xml version=\"1.0\"?><ErrorResponse><Error>"
        f"<Type>{kind}</Type><Code>{escape(code)}</Code><Message>{escape(message)}</Message>"
        f"</Error><RequestId>{request_id}</RequestId></ErrorResponse>"
    )
    return status, [("Content-Type", "text/xml"), ("x-amzn-RequestId", request_id)], body.encode()


def internal_error(call: Call) -> tuple[int, list[tuple[str, str]], bytes]:
    """What AWS answers when it failed inside (HTTP 500; every SDK retries it)."""
    message = "We encountered an internal error. Please try again."
    if not call.json_protocol:
        return _xml_error(500, "Receiver", "InternalError" if call.service == "sns" else "InternalFailure", message)
    if call.service == "dynamodb":
        return _json_error(call, 500, "com.amazonaws.dynamodb.v20120810#InternalServerError", "Internal server error")
    if call.service == "sqs":
        return _json_error(call, 500, "com.amazonaws.sqs#InternalError", message, "InternalError;Receiver")
    if call.service == "kms":
        return _json_error(call, 500, "KMSInternalException", message)
    return _json_error(call, 500, "InternalFailure", message)


def throttled(call: Call, variant: int) -> tuple[int, list[tuple[str, str]], bytes]:
    """What AWS answers when a caller goes too fast (HTTP 400 with a throttling code)."""
    if not call.json_protocol:
        return _xml_error(400, "Sender", "Throttling", "Rate exceeded")
    if call.service == "dynamodb":
        if variant % 2 == 0:
            return _json_error(
                call, 400, "com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException",
                "The level of configured provisioned throughput for the table was exceeded. "
                "Consider increasing your provisioning level with the UpdateTable API.",
            )
        return _json_error(call, 400, "com.amazonaws.dynamodb.v20120810#ThrottlingException", "Rate of requests exceeds the allowed throughput.")
    if call.service == "sqs":
        if variant % 2 == 0:
            return _json_error(call, 400, "com.amazonaws.sqs#RequestThrottled", "Request is throttled.", "RequestThrottled;Sender")
        return _json_error(call, 400, "com.amazonaws.sqs#ThrottlingException", "Rate exceeded", "ThrottlingException;Sender")
    return _json_error(call, 400, "ThrottlingException", "Rate exceeded")


def idempotency_token(call: Call, body: bytes) -> str | None:
    """The ClientRequestToken of a DynamoDB TransactWriteItems (None for anything else)."""
    if call.service != "dynamodb" or call.operation != "TransactWriteItems":
        return None
    try:
        token = json.loads(body).get("ClientRequestToken")
    except (ValueError, AttributeError):
        return None
    return token if isinstance(token, str) and token else None


# ------------------------------------------------------------------------------- the proxy


class ReadersWriterLock:
    """Many shared holders or one exclusive holder, served in arrival order: readers next to
    each other in the queue go in together, an exclusive one waits for those before it and
    holds back those after it (so neither kind can starve the other)."""

    def __init__(self) -> None:
        self.condition = threading.Condition()
        self.queue: collections.deque[tuple[object, bool]] = collections.deque()
        self.shared = 0
        self.exclusive = False

    def acquire(self, exclusive: bool) -> None:
        with self.condition:
            ticket = object()
            self.queue.append((ticket, exclusive))
            while not (self.queue[0][0] is ticket and not self.exclusive and (not exclusive or self.shared == 0)):
                self.condition.wait()
            self.queue.popleft()
            if exclusive:
                self.exclusive = True
            else:
                self.shared += 1
            self.condition.notify_all()  # the next in line may be a reader too

    def release(self, exclusive: bool) -> None:
        with self.condition:
            if exclusive:
                self.exclusive = False
            else:
                self.shared -= 1
            self.condition.notify_all()


class Faults:
    """The seeded decisions and what was injected."""

    def __init__(self, settings: FaultSettings):
        self.settings = settings
        self.random = random.Random(settings.seed)
        self.lock = threading.Lock()
        self.requests = 0
        self.forwarded = 0
        self.upstream_errors = 0
        self.by_kind = {kind: 0 for kind in KINDS}
        self.by_operation: dict[str, dict[str, int]] = {}
        self.idempotent_answers: dict[str, tuple[float, tuple]] = {}
        self.idempotent_replays = 0
        self.slowest: tuple[float, str] = (0.0, "")
        self.slow = 0  # forwarded requests that took over a second, waiting included
        self.timing: dict[str, list[float]] = {}  # operation -> [count, emulator seconds, waiting seconds]
        self.refused: dict[str, int] = {}  # "service:Operation Code" -> requests (or entries) refused as AWS would

    def decide(self, call: Call) -> tuple[str | None, int]:
        """The fault for this request (None: none) and a variant number for its response."""
        with self.lock:
            self.requests += 1
            if (call.service, call.operation) in EXEMPT_FROM_FAULTS:
                return None, 0
            draw, kind_draw = self.random.random(), self.random.random()
            if draw >= self.settings.rate:
                return None, 0
            after = self.settings.after_share
            if kind_draw < after:
                kind = "after"
            else:
                kind = "error" if (kind_draw - after) < (1.0 - after) / 2 else "throttle"
            self.by_kind[kind] += 1
            counts = self.by_operation.setdefault(f"{call.service}:{call.operation}", {})
            counts[kind] = counts.get(kind, 0) + 1
            return kind, self.by_kind[kind]

    def remembered(self, token: str) -> tuple | None:
        with self.lock:
            now = time.monotonic()
            for old in [t for t, (at, _) in self.idempotent_answers.items() if now - at > IDEMPOTENCY_WINDOW]:
                del self.idempotent_answers[old]
            found = self.idempotent_answers.get(token)
            if found is not None:
                self.idempotent_replays += 1
            return found[1] if found else None

    def remember(self, token: str, answer: tuple) -> None:
        with self.lock:
            self.idempotent_answers[token] = (time.monotonic(), answer)

    def count_forwarded(self, call: Call, waited: float, seconds: float) -> None:
        with self.lock:
            self.forwarded += 1
            if (call.service, call.operation) in EXEMPT_FROM_FAULTS:
                return  # the pollers' long polls: time spent waiting for messages, not work
            operation = f"{call.service}:{call.operation}"
            if seconds > 1.0:
                self.slow += 1
            if seconds > self.slowest[0]:
                self.slowest = (seconds, operation)
            timing = self.timing.setdefault(operation, [0, 0.0, 0.0])
            timing[0] += 1
            timing[1] += seconds - waited
            timing[2] += waited

    def count_refusal(self, call: Call, code: str, n: int = 1) -> None:
        with self.lock:
            name = f"{call.service}:{call.operation} {code}"
            self.refused[name] = self.refused.get(name, 0) + n

    def count_upstream_error(self) -> None:
        with self.lock:
            self.upstream_errors += 1

    def configure(self, update: dict) -> None:
        with self.lock:
            if "rate" in update:
                self.settings.rate = float(update["rate"])
            if "after_share" in update:
                self.settings.after_share = float(update["after_share"])

    def snapshot(self) -> dict:
        with self.lock:
            return {
                "rate": self.settings.rate,
                "seed": self.settings.seed,
                "after_share": self.settings.after_share,
                "requests": self.requests,
                "forwarded": self.forwarded,
                "upstream_errors": self.upstream_errors,
                "idempotent_replays": self.idempotent_replays,
                "slow_forwards": self.slow,
                "slowest_forward": {"seconds": round(self.slowest[0], 3), "operation": self.slowest[1]},
                "injected": sum(self.by_kind.values()),
                "by_kind": dict(self.by_kind),
                "by_operation": {k: dict(v) for k, v in sorted(self.by_operation.items())},
                "refused": dict(sorted(self.refused.items())),
                "timing": {
                    k: {"requests": int(n), "emulator_seconds": round(busy, 1), "waiting_seconds": round(waited, 1)}
                    for k, (n, busy, waited) in sorted(self.timing.items())
                },
            }


class FaultProxy(httputil.Server):
    def __init__(self, upstream: str, settings: FaultSettings, port: int = 0):
        parsed = urllib.parse.urlsplit(upstream)
        if parsed.scheme != "http" or not parsed.hostname:
            raise ValueError(f"the upstream must be an http:// URL, got {upstream!r}")
        self.upstream = (parsed.hostname, parsed.port or 80)
        self.faults = Faults(settings)
        self.dynamodb_lock = ReadersWriterLock()
        self.items_in_flight = strict.ItemsInFlight()
        self.receipts = strict.Receipts()
        self.key_schemas: dict[tuple[str, str], tuple[str, ...]] = {}
        super().__init__(("127.0.0.1", port), FaultProxyHandler)

    def key_names(self, table: str, authorization: str) -> tuple[str, ...]:
        """A table's key attribute names, sorted (asked of the emulator once per table and
        region; empty when it cannot say, and then conflicts on that table go unnoticed)."""
        scope = _SCOPE.search(authorization)
        region = authorization[scope.start():scope.end()].split("/")[2] if scope else ""
        cached = self.key_schemas.get((region, table))
        if cached is not None:
            return cached
        connection = http.client.HTTPConnection(*self.upstream, timeout=KEY_SCHEMA_TIMEOUT)
        try:
            connection.request(
                "POST", "/", body=json.dumps({"TableName": table}),
                headers={"Content-Type": "application/x-amz-json-1.0", "X-Amz-Target": "DynamoDB_20120810.DescribeTable", "Authorization": authorization},
            )
            response = connection.getresponse()
            described = json.loads(response.read()) if response.status == 200 else None
            names = tuple(sorted(k["AttributeName"] for k in described["Table"]["KeySchema"])) if described else ()
        except (OSError, ValueError, KeyError, TypeError):
            names = ()
        finally:
            connection.close()
        if names:
            self.key_schemas[(region, table)] = names
        return names

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class FaultProxyHandler(httputil.QuietHandler):
    server: FaultProxy
    server_version = "fault-proxy"

    def _upstream(self, fresh: bool = False) -> http.client.HTTPConnection:
        connection = getattr(self, "_connection", None)
        if connection is None or fresh:
            if connection is not None:
                connection.close()
            host, port = self.server.upstream
            connection = self._connection = http.client.HTTPConnection(host, port, timeout=UPSTREAM_TIMEOUT)
        return connection

    def finish(self) -> None:
        connection = getattr(self, "_connection", None)
        if connection is not None:
            connection.close()
        super().finish()

    def _forward(self, body: bytes) -> tuple[int, list[tuple[str, str]], bytes]:
        headers = {k: v for k, v in self.headers.items() if k.lower() not in _SKIPPED_REQUEST_HEADERS}
        headers["Content-Length"] = str(len(body))
        headers["Host"] = "%s:%d" % self.server.upstream
        for attempt in range(2):
            connection = self._upstream(fresh=attempt > 0)
            try:
                connection.request(self.command, self.path, body=body, headers=headers)
                response = connection.getresponse()
                data = response.read()
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError) as e:
                # A kept-alive connection the emulator closed while idle: the request never
                # reached it, so sending it once more is safe.
                if attempt == 0:
                    continue
                raise e
            if response.will_close:
                connection.close()
                self._connection = None
            kept = [(k, v) for k, v in response.getheaders() if k.lower() not in _SKIPPED_RESPONSE_HEADERS]
            return response.status, kept, data
        raise ConnectionError("unreachable")

    def _answer(self, status: int, headers: list[tuple[str, str]], body: bytes) -> None:
        content_type = next((v for k, v in headers if k.lower() == "content-type"), None)
        rest = [(k, v) for k, v in headers if k.lower() != "content-type"]
        httputil.send(self, status, body, rest, content_type=content_type)

    def _proxy(self) -> None:
        try:
            body = httputil.read_body(self, MAX_BODY)
        except (httputil.BodyTooLarge, httputil.BadRequest) as e:
            self.close_connection = True
            return httputil.send_json(self, 400, {"message": f"fault proxy: {type(e).__name__}"})
        call = describe(self.headers, body)
        kind, variant = self.server.faults.decide(call)
        if kind == "error":
            return self._answer(*internal_error(call))
        if kind == "throttle":
            return self._answer(*throttled(call, variant))
        request = None
        if call.json_protocol and call.operation in STRICT_OPERATIONS.get(call.service, ()):
            try:
                request = json.loads(body)
            except ValueError:
                request = None  # the emulator says what is wrong with it
            if not isinstance(request, dict):
                request = None
        if call.service == "sqs" and request is not None:
            return self._sqs(call, kind, body, request)
        if request is not None:
            try:
                strict.check_dynamodb(call.operation, request)
            except strict.Refusal as refusal:
                self.server.faults.count_refusal(call, refusal.code)
                return self._answer(*_json_error(call, 400, strict.VALIDATION, refusal.message))
        token = idempotency_token(call, body)
        remembered = self.server.faults.remembered(token) if token else None
        if remembered is not None:
            return self._answer(*remembered)
        # DynamoDB refuses a transaction touching an item another transaction or a write is
        # busy with, and a write to an item a transaction is busy with.
        in_flight = self.server.items_in_flight
        transaction_items: list | None = None
        written = None
        if request is not None and call.operation == "TransactWriteItems":
            transaction_items = strict.transaction_items(request, self._key_names)
            reasons = in_flight.begin_transaction(transaction_items)
            if reasons is not None:
                self.server.faults.count_refusal(call, "TransactionConflict")
                return self._answer(*_json_body(call, 400, strict.cancellation(reasons)))
        elif request is not None and call.operation in ("PutItem", "UpdateItem", "DeleteItem"):
            written = strict.single_write_item(call.operation, request, self._key_names)
            if not in_flight.begin_write(written):
                self.server.faults.count_refusal(call, "TransactionConflictException")
                return self._answer(*_json_error(call, 400, strict.DYNAMODB_PREFIX + "TransactionConflictException", strict.CONFLICT_REASON))
        try:
            with in_flight.one_at_a_time(written):
                answer = self._forward_isolated(call, body)
        finally:
            if transaction_items is not None:
                in_flight.end_transaction(transaction_items)
            if written is not None:
                in_flight.end_write(written)
        if answer is None:
            return self._answer(*internal_error(call))
        if token and 200 <= answer[0] < 300:
            self.server.faults.remember(token, answer)
        if call.service == "sqs" and call.operation == "ReceiveMessage" and answer[0] == 200:
            self._remember_receipts(answer[2])
        if kind == "after":
            return self._answer(*internal_error(call))
        return self._answer(*answer)

    def _key_names(self, table: str) -> tuple[str, ...]:
        return self.server.key_names(table, self.headers.get("Authorization", ""))

    def _forward_isolated(self, call: Call, body: bytes) -> tuple[int, list[tuple[str, str]], bytes] | None:
        """Forwards; a TransactWriteItems alone (see the module docstring). None: the emulator
        could not be reached."""
        isolate = call.service == "dynamodb"
        exclusive = isolate and call.operation == "TransactWriteItems"
        started = time.monotonic()
        if isolate:
            self.server.dynamodb_lock.acquire(exclusive)
        waited = time.monotonic() - started
        try:
            answer = self._forward(body)
        except OSError as e:
            self.server.faults.count_upstream_error()
            log.warning("fault proxy: upstream %s:%d failed (%s)", *self.server.upstream, e)
            self.close_connection = True
            return None
        finally:
            if isolate:
                self.server.dynamodb_lock.release(exclusive)
        self.server.faults.count_forwarded(call, waited, time.monotonic() - started)
        return answer

    def _remember_receipts(self, data: bytes) -> None:
        if b"ReceiptHandle" not in data:
            return
        try:
            messages = [m for m in json.loads(data).get("Messages") or [] if isinstance(m.get("ReceiptHandle"), str)]
            sent = [_int((m.get("Attributes") or {}).get("SentTimestamp")) for m in messages]
            self.server.receipts.remember([m["ReceiptHandle"] for m in messages], sent)
        except (ValueError, AttributeError, TypeError):
            pass

    def _sqs(self, call: Call, kind: str | None, body: bytes, request: dict) -> None:
        """SQS requests the checks read: refused as SQS would, or forwarded (a batch without
        the entries SQS would fail, its answer then given those entries as `Failed`)."""
        receipts = self.server.receipts
        operation = call.operation
        now = receipts.clock()
        failed: list[dict] = []
        if operation == "SendMessage":
            message = strict.refused_character(request.get("MessageBody"))
            if message is not None:
                self.server.faults.count_refusal(call, "InvalidMessageContents")
                return self._answer(*_json_error(call, 400, "com.amazonaws.sqs#InvalidMessageContents", message, "InvalidMessageContents;Sender"))
        elif operation == "ChangeMessageVisibility":
            message = strict.visibility_refusal(request.get("VisibilityTimeout"), receipts.received_at(request.get("ReceiptHandle")), now)
            if message is not None:
                self.server.faults.count_refusal(call, "InvalidParameterValue")
                return self._answer(*_json_error(call, 400, "com.amazonaws.sqs#InvalidParameterValue", message, "InvalidParameterValue;Sender"))
            cap = receipts.emulator_cap(request.get("ReceiptHandle"), request.get("VisibilityTimeout"))
            if cap is not None:
                body = json.dumps({**request, "VisibilityTimeout": cap}).encode()
        elif operation in ("SendMessageBatch", "ChangeMessageVisibilityBatch"):
            entries = request.get("Entries")
            if isinstance(entries, list):
                kept, changed = [], False
                for entry in entries:
                    if not isinstance(entry, dict):
                        kept.append(entry)
                        continue
                    if operation == "SendMessageBatch":
                        code, message = "InvalidMessageContents", strict.refused_character(entry.get("MessageBody"))
                    else:
                        code = "InvalidParameterValue"
                        message = strict.visibility_refusal(entry.get("VisibilityTimeout"), receipts.received_at(entry.get("ReceiptHandle")), now)
                    if message is None:
                        cap = receipts.emulator_cap(entry.get("ReceiptHandle"), entry.get("VisibilityTimeout")) if operation == "ChangeMessageVisibilityBatch" else None
                        kept.append(entry if cap is None else {**entry, "VisibilityTimeout": cap})
                        changed = changed or cap is not None
                    else:
                        failed.append({"Id": entry.get("Id"), "SenderFault": True, "Code": code, "Message": message})
                if failed:
                    self.server.faults.count_refusal(call, failed[0]["Code"], len(failed))
                    if not kept:
                        return self._answer(*_json_body(call, 200, {"Successful": [], "Failed": failed}))
                if failed or changed:
                    body = json.dumps({**request, "Entries": kept}).encode()
        answer = self._forward_isolated(call, body)
        if answer is None:
            return self._answer(*internal_error(call))
        if operation == "DeleteMessage" and 200 <= answer[0] < 300:
            receipts.forget([request.get("ReceiptHandle")])
        elif operation == "DeleteMessageBatch" and 200 <= answer[0] < 300:
            receipts.forget([e.get("ReceiptHandle") for e in request.get("Entries") or [] if isinstance(e, dict)])
        if failed and answer[0] == 200:
            try:
                merged = json.loads(answer[2])
                merged["Failed"] = list(merged.get("Failed") or []) + failed
                answer = (answer[0], answer[1], json.dumps(merged).encode())
            except (ValueError, AttributeError):
                pass
        if kind == "after":
            return self._answer(*internal_error(call))
        return self._answer(*answer)

    def do_GET(self) -> None:
        if self.path.split("?", 1)[0] == FAULTS_PATH:
            return httputil.send_json(self, 200, self.server.faults.snapshot())
        self._proxy()

    def do_POST(self) -> None:
        if self.path.split("?", 1)[0] == FAULTS_PATH:
            try:
                update = json.loads(httputil.read_body(self, 64 * 1024) or b"{}")
                for name in ("rate", "after_share"):
                    if name in update and not 0.0 <= float(update[name]) <= 1.0:
                        raise ValueError(f"{name} must be between 0 and 1")
                self.server.faults.configure(update)
            except (ValueError, TypeError, AttributeError, httputil.BodyTooLarge, httputil.BadRequest) as e:
                return httputil.send_json(self, 400, {"message": str(e) or type(e).__name__})
            return httputil.send_json(self, 200, self.server.faults.snapshot())
        self._proxy()

    do_PUT = do_DELETE = do_HEAD = do_PATCH = _proxy


# ---------------------------------------------------------------------- as its own process

READY_TIMEOUT = 10.0


def spawn(upstream: str, settings: FaultSettings, state_dir: Path, log_path: Path, stop: threading.Event):
    """Starts the proxy as a child process of its own (its own interpreter: the runner's is
    busy with the Runtime API and the pollers); returns (process, URL) once it listens."""
    from . import processes

    port_file = state_dir / "fault_proxy.port"
    port_file.unlink(missing_ok=True)
    argv = [
        sys.executable, "-m", "local_stack.fault_proxy", "--upstream", upstream, "--rate", repr(settings.rate),
        "--seed", str(settings.seed), "--after-share", repr(settings.after_share), "--port-file", str(port_file),
    ]
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
    proc = processes.spawn(argv, env=env, log_path=log_path, banner="fault proxy")
    deadline = time.monotonic() + READY_TIMEOUT
    while not port_file.exists():
        if proc.poll() is not None:
            raise RuntimeError(f"the fault proxy exited with status {proc.returncode}:\n{processes.tail(log_path)}")
        if time.monotonic() > deadline or stop.wait(0.02):
            processes.stop_all([proc], grace=0.3)
            raise RuntimeError(f"the fault proxy did not start within {READY_TIMEOUT:.0f} s")
    return proc, f"http://127.0.0.1:{int(port_file.read_text())}"



def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m local_stack.fault_proxy", description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--upstream", required=True, help="the emulator's URL")
    parser.add_argument("--rate", type=float, required=True, help="fraction of requests that fail")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    parser.add_argument("--after-share", type=float, default=DEFAULT_AFTER_SHARE, help="share of faults injected after forwarding")
    parser.add_argument("--port", type=int, default=0, help="0 = any free port")
    parser.add_argument("--port-file", help="written (atomically) with the port once listening")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s fault-proxy %(message)s", stream=sys.stderr)

    proxy = FaultProxy(args.upstream, FaultSettings(rate=args.rate, seed=args.seed, after_share=args.after_share), args.port)
    if args.port_file:
        target = Path(args.port_file)
        tmp = target.with_name(f".{target.name}.{os.getpid()}")
        tmp.write_text(str(proxy.server_address[1]))
        os.replace(tmp, target)
    log.info(
        "listening on %s -> %s:%d, rate %.3f, seed %d, after share %.2f",
        proxy.url, *proxy.upstream, args.rate, args.seed, args.after_share,
    )
    try:
        proxy.serve_forever(poll_interval=0.5)
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
