"""The emulated event source mappings against a real emulator: one message, one receive.

moto's ReceiveMessage is not atomic: it checks that a message is visible and only then marks
it received, with no lock in between, so two receives running at once can both take the same
message (seen as the same delivery, attempt 1, invoked twice a few ms apart). It happens
when the interpreter switches threads inside that window, which is rare at the default switch
interval and frequent at a tiny one: the test emulator (conftest.py) runs with a tiny one to
make it show.
"""

from __future__ import annotations

import collections
import threading
import time

import boto3
from botocore.config import Config as BotoConfig

from . import sqs_source
from .lambda_runtime import Result
from .sqs_source import EventSourceMappings, Mapping
from .template import SqsEvent

POLLERS = 8
MESSAGES = 400
VISIBILITY_SECONDS = 120  # far longer than the test: any second receive is a duplicate


def _client_factory(url: str):
    local = threading.local()

    def client(service: str, **config):
        session = getattr(local, "session", None) or boto3.session.Session()
        local.session = session
        options = {"connect_timeout": 2, "read_timeout": 30, "retries": {"max_attempts": 3, "mode": "standard"}}
        options.update(config)
        return session.client(
            service, endpoint_url=url, region_name="us-east-1", aws_access_key_id="test",
            aws_secret_access_key="test", config=BotoConfig(**options),
        )

    return client


class RecordingPool:
    """Stands in for a function: records the message ids of every invocation."""

    name = "recorder"

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.invocations: collections.Counter[str] = collections.Counter()

    def invoke(self, payload: bytes) -> Result:
        import json

        with self.lock:
            for record in json.loads(payload)["Records"]:
                self.invocations[record["messageId"]] += 1
        return Result(True, b"")


def test_no_message_reaches_two_invocations_within_its_visibility_timeout(emulator_url, monkeypatch):
    # GIVEN a queue and many pollers long-polling it at once, on an emulator that switches
    # threads often
    monkeypatch.setattr(sqs_source, "WAIT_SECONDS", 2)
    client = _client_factory(emulator_url)
    sqs = client("sqs")
    queue_url = sqs.create_queue(QueueName=f"race-{time.time_ns()}", Attributes={"VisibilityTimeout": str(VISIBILITY_SECONDS)})["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    pool = RecordingPool()
    event = SqsEvent(event="Queue", queue_arn=queue_arn, batch_size=10, report_batch_item_failures=True)
    stop = threading.Event()
    mappings = EventSourceMappings([Mapping(pool, event, queue_url, "us-east-1", POLLERS)], client, stop)
    mappings.start()
    try:
        # WHEN many messages arrive in batches, as the matcher sends them
        for first in range(0, MESSAGES, 10):
            sqs.send_message_batch(QueueUrl=queue_url, Entries=[{"Id": str(i), "MessageBody": f"m{first + i}"} for i in range(10)])
        deadline = time.monotonic() + 90
        while len(pool.invocations) < MESSAGES and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(0.5)  # a late second receive would show here
    finally:
        stop.set()

    # THEN every message was handed to exactly one invocation
    assert len(pool.invocations) == MESSAGES
    twice = {m: n for m, n in pool.invocations.items() if n > 1}
    assert not twice, f"{len(twice)} of {MESSAGES} messages reached more than one invocation"
