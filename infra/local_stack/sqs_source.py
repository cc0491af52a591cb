"""Emulated SQS event source mappings (what Lambda's pollers do for a function's `SQS` event).

Per mapping, min(processes, ScalingConfig.MaximumConcurrency) pollers each loop:
long-poll ReceiveMessage (up to min(BatchSize, 10) messages, 20 s wait, all attributes) ->
build the SQS event exactly as Lambda does -> invoke the function synchronously -> delete what
succeeded. With `ReportBatchItemFailures` the function's `batchItemFailures` name the messages
to keep; an unknown or empty identifier, or a response that is not JSON, fails the whole
batch, as in Lambda. A failed invocation deletes nothing. Messages not deleted come back after
the queue's visibility timeout; the queue's own RedrivePolicy (enforced by the emulator) moves
them to the DLQ after maxReceiveCount receives: the pollers never do that themselves.

The long poll returns as soon as a message arrives, so there is no sleeping on the hot path;
the only sleeps are a short, growing backoff after emulator errors.

The pollers of one queue take turns to receive (one ReceiveMessage, long poll included, per
queue at a time). moto's ReceiveMessage is not atomic (5.2.5: it checks that a message is
visible, then marks it received, with nothing held in between), so two receives running at
once could both take one message: the same message, attempt 1, in two invocations a few ms
apart. SQS hands a message to one receive per visibility timeout; taking turns keeps that
true. It costs no throughput: a receive returns as soon as messages are there, and the
invocation runs after the turn is handed on.

One emulator detail is corrected here: moto applies the queue's VisibilityTimeout as it was
when a long poll *started*, so after a SetQueueAttributes (tests shorten it to see retries
quickly) a poll already waiting would hide its messages for the old timeout. When a batch
leaves messages on the queue and the queue's timeout is no longer the one this poller last
saw, the kept messages get the current timeout (less the time since they were received).
This costs nothing on the success path and happens once per poller after such a change.
"""

from __future__ import annotations

import base64
import json
import logging
import math
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable

from .lambda_runtime import FunctionPool, Result
from .template import SqsEvent

log = logging.getLogger("local_stack")

WAIT_SECONDS = 20
SYSTEM_ATTRIBUTES = (
    "ApproximateReceiveCount",
    "SentTimestamp",
    "SenderId",
    "ApproximateFirstReceiveTimestamp",
    "SequenceNumber",
    "MessageGroupId",
    "MessageDeduplicationId",
    "AWSTraceHeader",
    "DeadLetterQueueSourceArn",
)


@dataclass
class Mapping:
    pool: FunctionPool
    event: SqsEvent
    queue_url: str
    region: str
    pollers: int


def sqs_record(message: dict, queue_arn: str, region: str) -> dict:
    """One Records[] entry of the SQS event Lambda sends."""
    attributes = message.get("Attributes") or {}
    message_attributes = {}
    for name, value in (message.get("MessageAttributes") or {}).items():
        binary = value.get("BinaryValue")
        message_attributes[name] = {
            "stringValue": value.get("StringValue"),
            "binaryValue": base64.b64encode(binary).decode() if isinstance(binary, (bytes, bytearray)) else binary,
            "stringListValues": list(value.get("StringListValues") or []),
            "binaryListValues": [base64.b64encode(b).decode() for b in value.get("BinaryListValues") or []],
            "dataType": value.get("DataType"),
        }
        if message_attributes[name]["stringValue"] is None:
            del message_attributes[name]["stringValue"]
        if message_attributes[name]["binaryValue"] is None:
            del message_attributes[name]["binaryValue"]
    return {
        "messageId": message["MessageId"],
        "receiptHandle": message["ReceiptHandle"],
        "body": message.get("Body", ""),
        "attributes": {k: attributes[k] for k in SYSTEM_ATTRIBUTES if k in attributes},
        "messageAttributes": message_attributes,
        "md5OfBody": message.get("MD5OfBody", ""),
        "eventSource": "aws:sqs",
        "eventSourceARN": queue_arn,
        "awsRegion": region,
    }


def messages_to_delete(result: Result, messages: list[dict], report_batch_item_failures: bool) -> list[dict]:
    """Which received messages the invocation's outcome lets us delete."""
    if not result.ok:
        return []
    if not report_batch_item_failures:
        return messages
    text = result.payload.strip()
    if not text:
        return messages
    try:
        response = json.loads(text)
    except ValueError:
        return []  # invalid JSON fails the whole batch
    if not isinstance(response, dict):
        return messages
    failures = response.get("batchItemFailures")
    if not failures:
        return messages
    if not isinstance(failures, list):
        return []
    ids = {m["MessageId"] for m in messages}
    failed: set[str] = set()
    for item in failures:
        identifier = item.get("itemIdentifier") if isinstance(item, dict) else None
        if not isinstance(identifier, str) or not identifier or identifier not in ids:
            return []  # an unknown or empty identifier fails the whole batch
        failed.add(identifier)
    return [m for m in messages if m["MessageId"] not in failed]


class EventSourceMappings:
    def __init__(
        self,
        mappings: list[Mapping],
        client_factory: Callable[..., Any],
        stop: threading.Event,
        verbose: bool = False,
        delete_client_factory: Callable[..., Any] | None = None,
        receive_client_factory: Callable[..., Any] | None = None,
    ):
        self.mappings = mappings
        self.client_factory = client_factory
        # ReceiveMessage may go elsewhere too (through the proxy, which remembers when each
        # message was received: SQS counts the 12 h visibility cap from there).
        self.receive_client_factory = receive_client_factory
        self.receive_turns: dict[str, threading.Lock] = {m.queue_url: threading.Lock() for m in mappings}
        # DeleteMessageBatch may go elsewhere (through the fault proxy): a delete that fails
        # leaves a processed message to come back, a duplicate, as on AWS.
        self.delete_client_factory = delete_client_factory
        self.stop = stop
        self.verbose = verbose
        self.threads: list[threading.Thread] = []

    def start(self) -> None:
        for mapping in self.mappings:
            for i in range(mapping.pollers):
                thread = threading.Thread(
                    target=self._poll, args=(mapping,), name=f"sqs-{mapping.pool.name}-{mapping.event.event}-{i}", daemon=True
                )
                thread.start()
                self.threads.append(thread)

    def _poll(self, mapping: Mapping) -> None:
        # The read timeout must outlast the long poll.
        sqs = self.client_factory("sqs")
        receive_options = {"read_timeout": WAIT_SECONDS + 10, "retries": {"max_attempts": 1, "mode": "standard"}}
        receiver = (self.receive_client_factory or self.client_factory)("sqs", **receive_options)
        deleter = self.delete_client_factory("sqs") if self.delete_client_factory else sqs
        turn = self.receive_turns[mapping.queue_url]
        event = mapping.event
        backoff = 0.0
        errors = 0
        visibility = self._visibility_timeout(sqs, mapping)
        while not self.stop.is_set():
            if not turn.acquire(timeout=1.0):
                continue  # check for a stop now and then
            try:
                try:
                    response = receiver.receive_message(
                        QueueUrl=mapping.queue_url,
                        MaxNumberOfMessages=max(1, min(event.batch_size, 10)),
                        WaitTimeSeconds=WAIT_SECONDS,
                        MessageSystemAttributeNames=["All"],
                        MessageAttributeNames=["All"],
                    )
                finally:
                    turn.release()
            except Exception as e:  # the emulator is down or busy: back off, then retry
                if self.stop.is_set():
                    return
                errors += 1
                if errors == 1 or errors % 50 == 0:
                    log.warning("%s.%s: ReceiveMessage failed (%s); retrying", mapping.pool.name, event.event, e)
                backoff = min(2.0, max(0.05, backoff * 2))
                self.stop.wait(backoff)
                continue
            backoff, errors = 0.0, 0
            received_at = time.monotonic()
            messages = response.get("Messages") or []
            if not messages:
                continue
            payload = {"Records": [sqs_record(m, event.queue_arn, mapping.region) for m in messages]}
            result = mapping.pool.invoke(json.dumps(payload).encode())
            done = messages_to_delete(result, messages, event.report_batch_item_failures)
            if self.verbose or not result.ok:
                log.info(
                    "%s.%s: batch of %d -> %s, %d deleted",
                    mapping.pool.name, event.event, len(messages),
                    "ok" if result.ok else f"{result.reason} {result.error_type}", len(done),
                )
            if done:
                self._delete(deleter, mapping, done)
            if len(done) < len(messages) and not self.stop.is_set():
                visibility = self._apply_current_visibility(sqs, mapping, messages, done, visibility, received_at)

    def _visibility_timeout(self, sqs, mapping: Mapping) -> int | None:
        try:
            attributes = sqs.get_queue_attributes(QueueUrl=mapping.queue_url, AttributeNames=["VisibilityTimeout"])
            return int(attributes["Attributes"]["VisibilityTimeout"])
        except Exception:
            return None

    def _apply_current_visibility(self, sqs, mapping: Mapping, messages: list[dict], done: list[dict], seen: int | None, received_at: float) -> int | None:
        """See the module docstring: corrects a visibility timeout the long poll took stale."""
        current = self._visibility_timeout(sqs, mapping)
        if current is None or current == seen or seen is None:
            # Unknown before (the first read failed): no change seen, nothing to correct.
            return seen if current is None else current
        remaining = max(0, math.ceil(current - (time.monotonic() - received_at)))
        deleted = {m["MessageId"] for m in done}
        entries = [
            {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"], "VisibilityTimeout": remaining}
            for i, m in enumerate(messages)
            if m["MessageId"] not in deleted
        ]
        try:
            sqs.change_message_visibility_batch(QueueUrl=mapping.queue_url, Entries=entries)
        except Exception as e:
            log.warning("%s: ChangeMessageVisibilityBatch failed (%s)", mapping.pool.name, e)
        return current

    def _delete(self, sqs, mapping: Mapping, messages: list[dict]) -> None:
        entries = [{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)]
        for attempt in range(3):
            try:
                response = sqs.delete_message_batch(QueueUrl=mapping.queue_url, Entries=entries)
            except Exception as e:
                if self.stop.is_set():
                    return
                log.warning("%s: DeleteMessageBatch failed (%s)", mapping.pool.name, e)
                self.stop.wait(0.05 * (attempt + 1))
                continue
            failed = response.get("Failed") or []
            if failed:
                log.warning("%s: %d messages could not be deleted: %s", mapping.pool.name, len(failed), failed[0].get("Message"))
            return
