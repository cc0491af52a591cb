"""Starting, describing and stopping the whole local stack.

Order matters and is chosen so that nothing observable happens too early:

1. the HTTP front's port is bound first (a port in use fails at once), but it does not answer
   until the very end;
2. the emulator starts and the template's resources are created in it;
3. the function processes start, then the control server and the SQS pollers;
4. once the processes have asked for work (bounded wait), `<state-dir>/stack.json` is written
   atomically, and only then does the front start answering: `/health` can never answer
   before stack.json exists;
5. the URLs and the admin key go to stdout; everything else is logged to stderr.

SIGINT and SIGTERM stop everything this process started (front, pollers, function processes
with SIGTERM then SIGKILL after 2 s, emulator) and exit 0. Children also carry
PR_SET_PDEATHSIG, so even a SIGKILL of the runner takes them down.
"""

from __future__ import annotations

import faulthandler
import json
import logging
import os
import secrets
import select
import signal
import string
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from . import config as config_module
from . import fault_proxy, processes
from .config import Config, ConfigError
from .control import ControlServer
from .emulator import Emulator, EmulatorError, Stack, apply_ttl, create_stack
from .http_api import HttpApiServer, Route
from .lambda_runtime import LAMBDA_RESERVED_ENV, DeadlineWatcher, FunctionPool, base_environment
from .sqs_source import EventSourceMappings, Mapping
from .template import FunctionSpec, TemplateError, function_by_binary, load, resolve

log = logging.getLogger("local_stack")

# Local defaults for the product's settings (SPEC section 9); the runner's own environment
# and explicit --parameter-overrides of the parameter behind them take precedence.
LOCAL_DEFAULTS = {
    "WEBHOOKS_ALLOW_HTTP": "true",
    "WEBHOOKS_ALLOWED_TARGETS": "127.0.0.0/8,::1/128",
}
ADMIN_KEY_PARAMETER = "AdminKeyHash"
ADMIN_KEY_VARIABLE = "WEBHOOKS_ADMIN_KEY_SHA256"
# The queues stack.json names, by the template's logical ids.
WELL_KNOWN_QUEUES = {
    "ingest_queue_url": "IngestQueue",
    "ingest_dlq_url": "IngestDeadLetterQueue",
    "delivery_queue_url": "DeliveryQueue",
    "delivery_dlq_url": "DeliveryDeadLetterQueue",
}
READY_TIMEOUT = 30.0


class StartupError(Exception):
    pass


class Interrupted(BaseException):
    """SIGINT/SIGTERM arrived while starting."""


class Runner:
    def __init__(self, config: Config):
        self.config = config
        self.stop = threading.Event()
        self.started = False
        self.emulator = Emulator(config)
        self.front: HttpApiServer | None = None
        self.front_thread: threading.Thread | None = None
        self.control: ControlServer | None = None
        self.control_thread: threading.Thread | None = None
        self.deadlines = DeadlineWatcher()
        self.pools: dict[str, FunctionPool] = {}
        self.mappings: EventSourceMappings | None = None
        self.stack_json: dict[str, Any] = {}
        # The functions (and the pollers' receives and deletes) reach the emulator through this
        # proxy; `fault_proxy_url` names it only when faults are on (WEBHOOKS_LOCAL_FAULT_RATE > 0).
        self.fault_proxy = None
        self.proxy_url: str | None = None
        self.fault_proxy_url: str | None = None

    # ------------------------------------------------------------------ start

    def start(self) -> None:
        cfg = self.config
        t0 = time.monotonic()
        cfg.logs_dir.mkdir(parents=True, exist_ok=True)
        cfg.stack_file.unlink(missing_ok=True)  # a stale one would point at dead ports

        api_id = "".join(secrets.choice(string.ascii_lowercase + string.digits) for _ in range(10))
        try:
            self.front = HttpApiServer(cfg.http_port, [], api_id=api_id, account_id=cfg.account_id, verbose=cfg.verbose)
        except OSError as e:
            raise StartupError(f"cannot listen on 127.0.0.1:{cfg.http_port} ({e.strerror}); set WEBHOOKS_HTTP_PORT, 0 = any free port") from None
        api_url = f"http://127.0.0.1:{self.front.port}"

        # The emulator boots, and then loads its CloudFormation, while the template is read.
        self.emulator.launch()
        loaded: dict[str, Any] = {}

        def read_template() -> None:
            try:
                loaded["template"] = load(
                    cfg.template,
                    {"region": cfg.region, "account_id": cfg.account_id, "api_id": api_id, "api_url": api_url},
                )
            except Exception as e:  # re-raised below, in the main thread
                loaded["error"] = e

        reader = threading.Thread(target=read_template, name="template", daemon=True)
        reader.start()
        self.emulator.wait_ready(self.stop)
        log.info("emulator ready on %s", self.emulator.url)
        self.emulator.warm_up()
        reader.join()
        if "error" in loaded:
            raise loaded["error"]
        template = loaded["template"]
        functions = function_by_binary(template.functions)
        missing = [str(cfg.bin_dir / b) for b in functions if not (cfg.bin_dir / b).is_file()]
        if missing:
            raise StartupError(f"function binaries not found: {', '.join(missing)} (build them first: cargo build)")
        for skipped in template.skipped_event_kinds:
            log.warning("event %s is not emulated locally", skipped)
        if template.not_emulated:
            kinds = list(template.not_emulated.values())
            summary = ", ".join(f"{kinds.count(kind)} {kind}" for kind in sorted(set(kinds)))
            log.info("not emulated locally (no local effect): %s", summary)

        parameters = self._parameters(template.parameters)

        stack = create_stack(self.emulator, template, parameters)
        apply_ttl(self.emulator, stack, resolve(template.ttl, stack.outputs))
        log.info("stack created: %d queues, %d tables, %d topics", len(stack.queues), len(stack.tables), len(stack.topics))

        # The proxy runs in every stack: it refuses what AWS refuses (see strict.py), and it
        # injects faults only when asked to (rate 0 otherwise).
        faults = cfg.faults or fault_proxy.FaultSettings(rate=0.0)
        try:
            self.fault_proxy, self.proxy_url = fault_proxy.spawn(
                self.emulator.url, faults, cfg.state_dir, cfg.logs_dir / "fault_proxy.log", self.stop
            )
        except RuntimeError as e:
            raise StartupError(str(e)) from None
        if cfg.faults is not None:
            self.fault_proxy_url = self.proxy_url
            log.info(
                "fault proxy on %s: %.1f %% of the functions' AWS requests fail (seed %d, %.0f %% of them after taking effect)",
                self.proxy_url, 100 * cfg.faults.rate, cfg.faults.seed, 100 * cfg.faults.after_share,
            )
        else:
            log.info("strict proxy on %s (no faults)", self.proxy_url)
        endpoint_url = self.proxy_url

        resolved = {binary: spec.resolved(stack.outputs) for binary, spec in functions.items()}
        envs = {binary: self._function_env(spec, stack) for binary, spec in resolved.items()}
        self.deadlines.start()
        for binary, spec in resolved.items():
            try:
                env = base_environment(spec, envs[binary], region=cfg.region, endpoint_url=endpoint_url, bin_dir=cfg.bin_dir)
            except ValueError as e:
                raise StartupError(str(e)) from None
            self.pools[binary] = FunctionPool(
                spec, env=env, binary=cfg.bin_dir / binary, processes=cfg.processes, logs_dir=cfg.logs_dir,
                region=cfg.region, account_id=cfg.account_id, deadlines=self.deadlines, verbose=cfg.verbose,
            )
        for pool in self.pools.values():
            pool.start()

        self.control = ControlServer(self.pools)
        self.control_thread = threading.Thread(target=self.control.serve_forever, name="control", daemon=True)
        self.control_thread.start()

        # The pollers stand in for AWS's own event source mapping: their receives and deletes go
        # through the proxy (receives are never faulted there, deletes are; the proxy learns
        # when each message was received), their visibility corrections go to the emulator.
        self.mappings = EventSourceMappings(
            self._mappings(resolved, stack), self.emulator.client, self.stop, cfg.verbose,
            delete_client_factory=self._proxy_client, receive_client_factory=self._proxy_client,
        )
        self.mappings.start()

        deadline = time.monotonic() + READY_TIMEOUT
        for name, pool in self.pools.items():
            if not pool.wait_ready(max(0.0, deadline - time.monotonic())):
                log.warning("%s: not ready (a process failed to start, or %.0f s passed); see %s/%s-*.log", name, READY_TIMEOUT, cfg.logs_dir, name)

        self.front.routes = sorted(
            (Route(route, self.pools[spec.binary]) for spec in resolved.values() for route in spec.http_routes), key=Route.rank
        )
        self._write_stack_json(api_url, stack, resolved, envs, template)
        self.front_thread = threading.Thread(target=self.front.serve_forever, name="http-api", daemon=True)
        self.front_thread.start()
        self.started = True
        log.info(
            "ready in %.1f s: %s (%d process%s per function; logs in %s)",
            time.monotonic() - t0, api_url, cfg.processes, "" if cfg.processes == 1 else "es", cfg.logs_dir,
        )

    def _proxy_client(self, service: str, **config: Any):
        return self.emulator.client(service, endpoint_url=self.proxy_url, **config)

    def _parameters(self, declared: dict[str, dict]) -> dict[str, str]:
        unknown = sorted(set(self.config.parameter_overrides) - set(declared))
        if unknown:
            raise StartupError(f"the template declares no parameter {', '.join(unknown)} (declared: {', '.join(declared)})")
        if ADMIN_KEY_PARAMETER in self.config.parameter_overrides:
            raise StartupError(f"set the admin key with WEBHOOKS_ADMIN_KEY or WEBHOOKS_ADMIN_KEY_SHA256, not {ADMIN_KEY_PARAMETER}")
        parameters: dict[str, str] = {}
        if ADMIN_KEY_PARAMETER in declared:
            parameters[ADMIN_KEY_PARAMETER] = self.config.admin_key.sha256
        parameters.update(self.config.parameter_overrides)
        return parameters

    def _function_env(self, spec: FunctionSpec, stack: Stack) -> dict[str, str]:
        """The template's variables, resolved, with the local queue URLs and local overrides."""
        environ = self.config.environ
        overridden_parameters = set(self.config.parameter_overrides)
        env = {}
        for name, value in spec.env.items():
            value = stack.localize(value)
            if name.startswith("WEBHOOKS_"):
                source = spec.env_source.get(name)
                explicit = isinstance(source, dict) and source.get("Ref") in overridden_parameters
                if name in environ:
                    value = environ[name]
                elif name in LOCAL_DEFAULTS and not explicit:
                    value = LOCAL_DEFAULTS[name]
            env[name] = value
        if ADMIN_KEY_VARIABLE in env:
            env[ADMIN_KEY_VARIABLE] = self.config.admin_key.sha256
        return env

    def _mappings(self, functions: dict[str, FunctionSpec], stack: Stack) -> list[Mapping]:
        by_arn = {arn: stack.queues[lid] for lid, arn in stack.queue_arns.items()}
        sqs = None
        result = []
        for binary, spec in functions.items():
            for event in spec.sqs_events:
                if not event.enabled:
                    log.info("%s.%s: disabled in the template", spec.logical_id, event.event)
                    continue
                url = by_arn.get(event.queue_arn)
                if url is None:  # a queue from outside the stack: look it up by name
                    sqs = sqs or self.emulator.client("sqs")
                    url = sqs.get_queue_url(QueueName=event.queue_arn.rsplit(":", 1)[-1])["QueueUrl"]
                pollers = self.config.processes
                if event.max_concurrency is not None:
                    pollers = max(1, min(pollers, event.max_concurrency))
                result.append(Mapping(self.pools[binary], event, url, self.config.region, pollers))
        return result

    def _write_stack_json(self, api_url: str, stack: Stack, functions: dict[str, FunctionSpec], envs: dict, template) -> None:
        cfg = self.config
        topics = [lid for lid, r in template.resources.items() if r.get("Type") == "AWS::SNS::Topic" and lid in stack.topics]
        document = {
            "api_url": api_url,
            "web_app_url": api_url + "/",
            "emulator_url": self.emulator.url,
            "region": cfg.region,
            "account_id": cfg.account_id,
            **{key: stack.queues.get(lid) for key, lid in WELL_KNOWN_QUEUES.items()},
            "alerts_topic_arn": stack.topics[topics[0]] if topics else None,
            "admin_key": cfg.admin_key.key,
            "control_url": self.control.url,
            "stack_name": cfg.stack_name,
            "queues": stack.queues,
            "tables": stack.tables,
            "topics": stack.topics,
            "resources": stack.resources,
            "functions": {
                binary: {"logical_id": spec.logical_id, "timeout": spec.timeout, "memory": spec.memory, "env": envs[binary]}
                for binary, spec in functions.items()
            },
            "lambda_reserved_env": list(LAMBDA_RESERVED_ENV),
            "local_env": {"AWS_ENDPOINT_URL": self.proxy_url},
            "proxy_url": self.proxy_url,
            "fault_proxy_url": self.fault_proxy_url,
            "processes_per_function": cfg.processes,
            "pid": os.getpid(),
            "started_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        self.stack_json = document
        cfg.state_dir.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".stack.", suffix=".json", dir=cfg.state_dir)
        try:
            with os.fdopen(fd, "w") as f:
                json.dump(document, f, indent=2)
                f.write("\n")
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, cfg.stack_file)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    # ------------------------------------------------------------------ stop

    def shutdown(self) -> None:
        t0 = time.monotonic()
        self.stop.set()
        # The servers notice shutdown() at their next poll (up to 0.5 s): let that overlap
        # with stopping the processes; the pools refuse new invocations from here on.
        closers = []
        for server, thread in ((self.front, self.front_thread), (self.control, self.control_thread)):
            if server is not None:
                closer = threading.Thread(target=_close_server, args=(server, thread is not None), daemon=True)
                closer.start()
                closers.append(closer)
        procs = [proc for pool in self.pools.values() for proc in pool.begin_stop()]
        processes.stop_all(procs, grace=2.0)
        for pool in self.pools.values():
            pool.join(1.0)
        self.deadlines.stop()
        if self.fault_proxy is not None:
            processes.stop_all([self.fault_proxy], grace=0.3)
        self.emulator.stop()
        for closer in closers:
            closer.join(2.0)
        if self.started:
            self.config.stack_file.unlink(missing_ok=True)
        log.info("stopped in %.1f s", time.monotonic() - t0)


def _close_server(server, serving: bool) -> None:
    if serving:
        server.shutdown()
    server.server_close()


# ---------------------------------------------------------------------- entry point


class _Formatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        stamp = time.strftime("%H:%M:%S", time.localtime(record.created)) + f".{int(record.msecs):03d}"
        level = "" if record.levelno < logging.WARNING else f"{record.levelname.lower()}: "
        text = f"{stamp} local-stack {level}{record.getMessage()}"
        if record.exc_info:
            text += "\n" + self.formatException(record.exc_info)
        return text


def _setup_logging() -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_Formatter())
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    log.propagate = False


def main(argv: list[str] | None = None) -> int:
    _setup_logging()
    # Loopback only: never send the emulator's traffic through a proxy from the environment.
    for name in ("NO_PROXY", "no_proxy"):
        os.environ[name] = ",".join(filter(None, [os.environ.get(name, ""), "127.0.0.1", "localhost"]))
    try:
        cfg = config_module.parse(argv)
    except ConfigError as e:
        log.error("%s", e)
        return 2

    runner = Runner(cfg)
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_w, False)
    signal.set_wakeup_fd(wake_w)
    received: list[int] = []

    def on_signal(signum, frame):
        received.append(signum)
        if not runner.started:
            raise Interrupted()

    faulthandler.register(signal.SIGUSR1, all_threads=True)  # `kill -USR1 <pid>`: thread dump on stderr
    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)

    try:
        try:
            runner.start()
        except Interrupted:
            log.info("interrupted while starting")
            runner.shutdown()
            return 0
        except (StartupError, TemplateError, EmulatorError, ConfigError) as e:
            log.error("%s", e)
            runner.shutdown()
            return 1
        except Exception:
            log.exception("could not start")
            runner.shutdown()
            return 1

        key = cfg.admin_key.key or "(not known: only WEBHOOKS_ADMIN_KEY_SHA256 was given)"
        api_url = runner.stack_json["api_url"]
        sys.stdout.write(f"API:       {api_url}\nWeb app:   {api_url}/\nAdmin key: {key}\n")
        sys.stdout.flush()

        # Sleep until a signal arrives: the wakeup fd makes this race-free.
        while not received:
            try:
                select.select([wake_r], [], [])
                os.read(wake_r, 64)
            except InterruptedError:
                pass
        log.info("received %s, stopping", signal.Signals(received[0]).name)
        runner.shutdown()
        return 0
    finally:
        signal.set_wakeup_fd(-1)
