"""The AWS emulator (moto server) and the stack created in it from the template.

moto keeps everything in memory, so every start creates the stack afresh. Its CloudFormation
does the resolving (see `template.py`); the little it ignores is applied here by API calls:
DynamoDB `TimeToLiveSpecification`. Queue URLs are taken from `GetQueueUrl`, which answers
with an URL on the emulator's own address, rather than from CloudFormation, which hands out
URLs that look like real AWS ones.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import processes
from .config import FAKE_CREDENTIALS, Config
from .template import LocalTemplate, TemplateError

log = logging.getLogger("local_stack")

READY_TIMEOUT = 30.0
STACK_TIMEOUT = 120.0


class EmulatorError(Exception):
    pass


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


class Emulator:
    """A moto server on 127.0.0.1, started from the same virtualenv as this Python."""

    def __init__(self, config: Config):
        self.config = config
        self.port = config.emulator_port
        self.proc: subprocess.Popen | None = None
        self.log_path = config.logs_dir / "emulator.log"
        self._local = threading.local()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, stop: threading.Event) -> None:
        self.launch()
        self.wait_ready(stop)

    def launch(self) -> None:
        """Starts the server without waiting for it (see wait_ready)."""
        executable = Path(sys.executable).parent / "moto_server"
        if not executable.exists():
            raise EmulatorError(f"{executable} not found: install infra/requirements.txt in this virtualenv")
        if self.port == 0:
            self.port = free_port()
        elif not port_is_free(self.port):
            raise EmulatorError(
                f"port {self.port} is in use (another local stack?); set WEBHOOKS_EMULATOR_PORT, 0 = any free port"
            )
        env = {**os.environ, **FAKE_CREDENTIALS, "AWS_DEFAULT_REGION": self.config.region, "AWS_REGION": self.config.region}
        self.proc = processes.spawn(
            [str(executable), "-H", "127.0.0.1", "-p", str(self.port)],
            env=env,
            log_path=self.log_path,
            banner=f"moto_server on port {self.port}",
        )

    def wait_ready(self, stop: threading.Event) -> None:
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        deadline = time.monotonic() + READY_TIMEOUT
        delay = 0.02
        while True:
            if self.proc.poll() is not None:
                raise EmulatorError(
                    f"the emulator exited with status {self.proc.returncode}:\n{processes.tail(self.log_path)}"
                )
            try:
                with opener.open(f"{self.url}/moto-api/", timeout=2):
                    pass
                return
            except urllib.error.HTTPError:
                return  # it answers: good enough
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise EmulatorError(f"the emulator did not answer on {self.url} within {READY_TIMEOUT:.0f} s")
            if stop.wait(delay):
                raise EmulatorError("stopped while waiting for the emulator")
            delay = min(delay * 1.5, 0.2)

    def warm_up(self) -> None:
        """The emulator loads its CloudFormation implementation on first use (seconds): do it now."""
        self.client("cloudformation").list_stacks()

    def stop(self) -> None:
        if self.proc is not None:
            # Its state lives in memory only, so there is nothing to wait for.
            processes.stop_all([self.proc], grace=0.3)

    def client(self, service: str, endpoint_url: str | None = None, **config: Any):
        """A boto3 client for the emulator (one boto3 Session per thread: sessions are not thread
        safe); `endpoint_url` sends its requests elsewhere (the fault proxy in front of it)."""
        import boto3
        from botocore.config import Config as BotoConfig

        session = getattr(self._local, "session", None)
        if session is None:
            session = self._local.session = boto3.session.Session()
        options = {"connect_timeout": 2, "read_timeout": 30, "retries": {"max_attempts": 3, "mode": "standard"}}
        options.update(config)
        return session.client(
            service,
            endpoint_url=endpoint_url or self.url,
            region_name=self.config.region,
            aws_access_key_id=FAKE_CREDENTIALS["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=FAKE_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
            aws_session_token=FAKE_CREDENTIALS["AWS_SESSION_TOKEN"],
            config=BotoConfig(**options),
        )


@dataclass
class Stack:
    """What the emulator created: physical ids by logical id, and the Output values."""

    outputs: dict[str, str]
    resources: dict[str, dict[str, str]]  # logical id -> {"type", "physical_id"}
    queues: dict[str, str] = field(default_factory=dict)  # logical id -> emulator-local URL
    queue_arns: dict[str, str] = field(default_factory=dict)
    cfn_queue_urls: dict[str, str] = field(default_factory=dict)  # CloudFormation URL -> local URL
    tables: dict[str, str] = field(default_factory=dict)
    topics: dict[str, str] = field(default_factory=dict)

    def localize(self, value: str) -> str:
        """Rewrites the AWS-looking queue URLs CloudFormation hands out to the emulator's."""
        for cfn_url, local_url in self.cfn_queue_urls.items():
            if cfn_url in value:
                value = value.replace(cfn_url, local_url)
        return value


def create_stack(emulator: Emulator, template: LocalTemplate, parameters: dict[str, str]) -> Stack:
    cfn = emulator.client("cloudformation")
    name = emulator.config.stack_name
    try:
        cfn.create_stack(
            StackName=name,
            TemplateBody=json.dumps(template.emulator_template),
            Parameters=[{"ParameterKey": k, "ParameterValue": v} for k, v in parameters.items()],
        )
    except Exception as e:  # botocore ClientError and friends: say what the emulator said
        raise EmulatorError(f"CreateStack failed: {e}") from e

    deadline = time.monotonic() + STACK_TIMEOUT
    while True:
        stack = cfn.describe_stacks(StackName=name)["Stacks"][0]
        status = stack["StackStatus"]
        if status == "CREATE_COMPLETE":
            break
        if not status.endswith("_IN_PROGRESS") or time.monotonic() > deadline:
            reasons = [
                f"{e['LogicalResourceId']}: {e.get('ResourceStatusReason')}"
                for e in cfn.describe_stack_events(StackName=name)["StackEvents"]
                if e.get("ResourceStatusReason")
            ]
            raise EmulatorError(f"stack {name} is {status}: {stack.get('StackStatusReason', '')} {'; '.join(reasons)}")
        time.sleep(0.1)

    outputs = {o["OutputKey"]: o.get("OutputValue", "") for o in stack.get("Outputs", [])}
    resources = {
        r["LogicalResourceId"]: {"type": r["ResourceType"], "physical_id": r.get("PhysicalResourceId", "")}
        for r in cfn.describe_stack_resources(StackName=name)["StackResources"]
        if r.get("LogicalResourceId")  # moto lists the resource types it skipped without one
    }
    missing = sorted(set(template.resources) - set(resources))
    for lid in missing:
        condition = template.resources[lid].get("Condition")
        if condition is not None:  # usually false with these parameters: not worth a warning
            log.info("%s (%s, condition %s) not created: the condition is false, or the emulator "
                     "cannot create it", lid, template.resources[lid].get("Type"), condition)
            continue
        log.warning("the emulator did not create %s (%s): its CloudFormation does not support it",
                    lid, template.resources[lid].get("Type"))

    result = Stack(outputs=outputs, resources=resources)
    sqs = emulator.client("sqs")
    for lid, r in resources.items():
        if r["type"] == "AWS::SQS::Queue":
            cfn_url = r["physical_id"]
            queue_name = cfn_url.rstrip("/").rsplit("/", 1)[-1]
            local_url = sqs.get_queue_url(QueueName=queue_name)["QueueUrl"]
            arn = sqs.get_queue_attributes(QueueUrl=local_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
            result.queues[lid] = local_url
            result.queue_arns[lid] = arn
            result.cfn_queue_urls[cfn_url] = local_url
        elif r["type"] == "AWS::DynamoDB::Table":
            result.tables[lid] = r["physical_id"]
        elif r["type"] == "AWS::SNS::Topic":
            result.topics[lid] = r["physical_id"]
    return result


def apply_ttl(emulator: Emulator, stack: Stack, specs: dict[str, Any]) -> None:
    """moto's CloudFormation ignores TimeToLiveSpecification: apply it through the API."""
    if not specs:
        return
    dynamodb = emulator.client("dynamodb")
    for lid, spec in specs.items():
        table = stack.tables.get(lid)
        if table is None:
            continue
        enabled = spec.get("Enabled")
        enabled = enabled if isinstance(enabled, bool) else str(enabled).lower() == "true"
        if not enabled:
            continue
        if not isinstance(spec.get("AttributeName"), str):
            raise TemplateError(f"{lid}: TimeToLiveSpecification.AttributeName must be a string")
        dynamodb.update_time_to_live(
            TableName=table,
            TimeToLiveSpecification={"AttributeName": spec["AttributeName"], "Enabled": True},
        )
