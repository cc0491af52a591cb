"""The functions as real processes behind a local Lambda Runtime API.

Each function (`FunctionPool`) runs N processes of its binary. Every process gets its own
Runtime API server (https://docs.aws.amazon.com/lambda/latest/dg/runtimes-api.html) on
127.0.0.1:<random port>, given to it as `AWS_LAMBDA_RUNTIME_API`, so a request to that server
can only come from that process: we always know which process holds which invocation.

An invocation waits in the pool's queue until a process asks for work
(`GET /invocation/next`), then belongs to that process until it answers, times out or exits:

* one invocation per process at a time; dispatch is by condition variables, no polling;
* the function's `Timeout` is enforced: past the deadline the invocation fails and the process
  is SIGKILLed (as Lambda discards the execution environment);
* a process that exits fails its in-flight invocation at once and is restarted, with a
  backoff that grows while it keeps dying young;
* a process that died while blocked in `/next` never takes work: its incarnation is marked
  dead (and the connection is checked) before an invocation is handed out, and an invocation
  whose hand-over fails to be written goes back to the front of the queue.

Each process's environment is exactly what Lambda would give it (the reserved variables
below) plus the template's variables, plus `AWS_ENDPOINT_URL` pointing at the emulator.
"""

from __future__ import annotations

import heapq
import itertools
import json
import logging
import re
import secrets
import select
import signal
import socket
import subprocess
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from . import httputil, processes
from .config import FAKE_CREDENTIALS
from .template import FunctionSpec

log = logging.getLogger("local_stack")

# The variables Lambda itself sets in every execution environment (a function may not define
# them). Tests subtract these from a process's environment to compare it with the template.
LAMBDA_RESERVED_ENV = (
    "_HANDLER",
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
    "AWS_EXECUTION_ENV",
    "AWS_LAMBDA_FUNCTION_NAME",
    "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
    "AWS_LAMBDA_FUNCTION_VERSION",
    "AWS_LAMBDA_LOG_GROUP_NAME",
    "AWS_LAMBDA_LOG_STREAM_NAME",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_LAMBDA_RUNTIME_API",
    "LAMBDA_TASK_ROOT",
    "LAMBDA_RUNTIME_DIR",
    "TZ",
    "LANG",
    "PATH",
)
# Set only locally: where the AWS SDK finds the emulator.
LOCAL_ONLY_ENV = ("AWS_ENDPOINT_URL",)

RUNTIME_PREFIX = "/2018-06-01/runtime"
MAX_RESPONSE_BYTES = 6 * 1024 * 1024 + 1024  # Lambda's synchronous response limit (+ slack)
LAMBDA_PATH = "/usr/local/bin:/usr/bin/:/bin:/opt/bin"

# Restart policy: a process that lived this long before dying is restarted at once.
HEALTHY_UPTIME = 10.0
BACKOFF_FIRST = 0.1
BACKOFF_MAX = 5.0

PENDING, RUNNING, DONE = "pending", "running", "done"


@dataclass
class Result:
    """How an invocation ended. `payload` is the response, or the error document on failure."""

    ok: bool
    payload: bytes
    error_type: str | None = None
    # On failure: "function" (the function reported an error), "timeout", "crash",
    # "throttled" (no process took it in time), "gave_up" (the caller stopped waiting; the
    # invocation may still run) or "stopped" (the local stack is shutting down).
    reason: str | None = None


def failure(error_type: str, message: str, reason: str) -> Result:
    return Result(False, json.dumps({"errorMessage": message, "errorType": error_type}).encode(), error_type, reason)


def trace_id() -> str:
    return f"Root=1-{int(time.time()):08x}-{secrets.token_hex(12)};Parent={secrets.token_hex(8)};Sampled=0"


class Invocation:
    def __init__(self, lock: threading.Lock, payload: bytes):
        self.id = str(uuid.uuid4())
        self.payload = payload
        self.trace_id = trace_id()
        self.state = PENDING
        self.result: Result | None = None
        self.slot: Slot | None = None
        self.attempt = 0  # bumped at each dispatch, so stale deadline timers do nothing
        self.deadline = 0.0  # time.monotonic()
        self.deadline_ms = 0  # epoch milliseconds, as the runtime sees it
        self.changed = threading.Condition(lock)


class DeadlineWatcher:
    """One thread that runs callbacks when their deadline passes (sleeping until the next one)."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._heap: list[tuple[float, int, Callable[[], None]]] = []
        self._seq = itertools.count()
        self._stopped = False
        self._thread = threading.Thread(target=self._run, name="deadlines", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        with self._cond:
            self._stopped = True
            self._cond.notify_all()

    def add(self, deadline: float, callback: Callable[[], None]) -> None:
        with self._cond:
            heapq.heappush(self._heap, (deadline, next(self._seq), callback))
            if self._heap[0][2] is callback:
                self._cond.notify_all()

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._stopped:
                    now = time.monotonic()
                    if self._heap and self._heap[0][0] <= now:
                        break
                    self._cond.wait(self._heap[0][0] - now if self._heap else None)
                if self._stopped:
                    return
                now = time.monotonic()
                due = []
                while self._heap and self._heap[0][0] <= now:
                    due.append(heapq.heappop(self._heap)[2])
            for callback in due:
                try:
                    callback()
                except Exception:
                    log.exception("deadline callback failed")


def base_environment(
    spec: FunctionSpec, template_env: dict[str, str], *, region: str, endpoint_url: str, bin_dir: Path
) -> dict[str, str]:
    """A process's environment, except the per-process AWS_LAMBDA_RUNTIME_API and log stream."""
    reserved = {
        "_HANDLER": spec.handler,
        "AWS_REGION": region,
        "AWS_DEFAULT_REGION": region,
        "AWS_EXECUTION_ENV": f"AWS_Lambda_{spec.runtime}",
        "AWS_LAMBDA_FUNCTION_NAME": spec.logical_id,
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(spec.memory),
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{spec.logical_id}",
        **FAKE_CREDENTIALS,
        "LAMBDA_TASK_ROOT": str(bin_dir),
        "LAMBDA_RUNTIME_DIR": str(bin_dir),
        "TZ": ":UTC",
        "LANG": "en_US.UTF-8",
        "PATH": LAMBDA_PATH,
    }
    clash = sorted((set(template_env) & set(LAMBDA_RESERVED_ENV)) | (set(template_env) & set(LOCAL_ONLY_ENV)))
    if clash:
        raise ValueError(f"{spec.logical_id}: Lambda reserves these environment variables: {', '.join(clash)}")
    return {**template_env, **reserved, "AWS_ENDPOINT_URL": endpoint_url}


# ---------------------------------------------------------------------------------- pool


class FunctionPool:
    """The processes of one function and the invocations waiting for them."""

    def __init__(
        self,
        spec: FunctionSpec,
        *,
        env: dict[str, str],
        binary: Path,
        processes: int,
        logs_dir: Path,
        region: str,
        account_id: str,
        deadlines: DeadlineWatcher,
        verbose: bool = False,
    ):
        self.spec = spec
        self.name = spec.binary
        self.env = env
        self.binary = binary
        self.logs_dir = logs_dir
        self.deadlines = deadlines
        self.verbose = verbose
        self.arn = f"arn:aws:lambda:{region}:{account_id}:function:{spec.logical_id}"
        self.lock = threading.Lock()
        self.work = threading.Condition(self.lock)  # processes blocked in /next wait here
        self.changed = threading.Condition(self.lock)  # readiness and status changes
        self.pending: deque[Invocation] = deque()
        self.stopping = False
        self.stopped = threading.Event()
        self.slots = [Slot(self, i) for i in range(processes)]

    # ----------------------------------------------------------- lifecycle

    def start(self) -> None:
        for slot in self.slots:
            slot.thread.start()

    def wait_ready(self, timeout: float) -> bool:
        """True once every process has asked for its first invocation; False if one failed
        to start (no point waiting for a crash loop) or on timeout."""
        deadline = time.monotonic() + timeout
        with self.lock:
            while not all(s.incarnation and s.incarnation.ready for s in self.slots):
                if any(s.init_failures for s in self.slots):
                    return False
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self.stopping:
                    return False
                self.changed.wait(remaining)
            return True

    def begin_stop(self) -> list[subprocess.Popen]:
        """No more invocations or restarts; returns the processes for the caller to stop."""
        with self.lock:
            self.stopping = True
            self.stopped.set()
            while self.pending:
                self._finish(self.pending.popleft(), failure("ServiceException", "the local stack is stopping", "stopped"))
            self.work.notify_all()
            self.changed.notify_all()
            return [s.proc for s in self.slots if s.proc is not None and s.proc.returncode is None]

    def join(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        for slot in self.slots:
            slot.thread.join(max(0.0, deadline - time.monotonic()))

    # ----------------------------------------------------------- invoking

    def invoke(self, payload: bytes, wait_timeout: float | None = None) -> Result:
        """Runs one invocation and waits for its result (RequestResponse).

        `wait_timeout` bounds the whole wait: if no process took the invocation by then it is
        withdrawn ("throttled"); if one did, the caller gets "gave_up" and the invocation runs
        on, bounded by the function's own timeout.
        """
        with self.lock:
            if self.stopping:
                return failure("ServiceException", "the local stack is stopping", "stopped")
            inv = Invocation(self.lock, payload)
            self.pending.append(inv)
            self.work.notify_all()
            give_up = None if wait_timeout is None else time.monotonic() + wait_timeout
            while inv.state != DONE:
                remaining = None if give_up is None else give_up - time.monotonic()
                if remaining is not None and remaining <= 0:
                    if inv.state == PENDING:
                        self.pending.remove(inv)
                        self._finish(inv, failure("TooManyRequestsException", "no process of the function became free in time", "throttled"))
                        break
                    return failure("GatewayTimeout", "the invocation did not finish in time", "gave_up")
                inv.changed.wait(remaining)
            return inv.result

    def _finish(self, inv: Invocation, result: Result) -> bool:
        if inv.state == DONE:
            return False
        inv.state = DONE
        inv.result = result
        inv.changed.notify_all()
        return True

    def _dispatch(self, inv: Invocation, slot: "Slot") -> None:
        timeout = self.spec.timeout
        inv.state = RUNNING
        inv.slot = slot
        inv.attempt += 1
        inv.deadline = time.monotonic() + timeout
        inv.deadline_ms = int((time.time() + timeout) * 1000)
        slot.in_flight = inv
        inv.changed.notify_all()
        self.changed.notify_all()
        attempt = inv.attempt
        self.deadlines.add(inv.deadline, lambda: self._expire(inv, attempt))

    def _expire(self, inv: Invocation, attempt: int) -> None:
        with self.lock:
            if inv.state != RUNNING or inv.attempt != attempt:
                return
            slot = inv.slot
            stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
            self._finish(inv, failure("Sandbox.Timedout", f"{stamp} {inv.id} Task timed out after {self.spec.timeout:.2f} seconds", "timeout"))
            slot.in_flight = None
            pid = slot.kill_for_timeout()
            self.changed.notify_all()
        log.warning("%s[%d]: invocation %s timed out after %d s; killed process %s", self.name, slot.index, inv.id, self.spec.timeout, pid)

    # ----------------------------------------------------------- called by the Runtime API

    def next_invocation(self, inc: "Incarnation", connection_alive: Callable[[], bool]) -> Invocation | None:
        """Blocks until an invocation is available for this process; None once it is gone."""
        slot = inc.slot
        with self.lock:
            if inc.alive and slot.in_flight is not None and slot.incarnation is inc:
                # Asked for more work without answering: the previous invocation failed.
                previous, slot.in_flight = slot.in_flight, None
                self._finish(previous, failure("Runtime.InvalidResponse", "the runtime asked for the next invocation without answering this one", "function"))
            if not inc.ready:
                inc.ready = True
                self.changed.notify_all()
            while True:
                if self.stopping or not inc.alive:
                    return None
                if self.pending:
                    if not connection_alive():
                        return None
                    inv = self.pending.popleft()
                    self._dispatch(inv, slot)
                    return inv
                self.work.wait()

    def hand_over_failed(self, inv: Invocation, inc: "Incarnation") -> None:
        """The invocation could not be written to the process: put it back, first in line."""
        with self.lock:
            if inv.state == RUNNING and inc.slot.in_flight is inv:
                inc.slot.in_flight = None
                inv.state = PENDING
                inv.slot = None
                self.pending.appendleft(inv)
                self.work.notify_all()
                self.changed.notify_all()

    def complete(self, inc: "Incarnation", request_id: str, result: Result) -> bool:
        with self.lock:
            slot = inc.slot
            inv = slot.in_flight
            if inv is None or inv.id != request_id or slot.incarnation is not inc or inv.state != RUNNING:
                return False
            slot.in_flight = None
            self._finish(inv, result)
            self.changed.notify_all()
        if self.verbose:
            log.info("%s[%d]: %s %s", self.name, slot.index, request_id, "ok" if result.ok else f"error {result.error_type}")
        return True

    def process_ended(self, inc: "Incarnation", returncode: int) -> None:
        with self.lock:
            inc.alive = False
            slot = inc.slot
            inv, slot.in_flight = slot.in_flight, None
            if inv is not None and inv.state == RUNNING:
                self._finish(inv, failure("Runtime.ExitError", f"RequestId: {inv.id} Error: Runtime exited with {describe_exit(returncode)}", "crash"))
            elif not inc.ready and not inc.killed and not self.stopping:
                # It died initialising. Like Lambda, fail the invocation waiting for it, so a
                # function that cannot start answers errors instead of leaving callers hanging.
                slot.init_failures += 1
                if self.pending:
                    victim = self.pending.popleft()
                    result = inc.init_error or failure("Runtime.ExitError", f"Runtime exited during init with {describe_exit(returncode)}", "crash")
                    self._finish(victim, Result(False, result.payload, result.error_type, "crash"))
            self.work.notify_all()
            self.changed.notify_all()

    # ----------------------------------------------------------- status

    def status(self) -> list[dict]:
        with self.lock:
            return [slot.status() for slot in self.slots]


def describe_exit(returncode: int) -> str:
    if returncode < 0:
        try:
            return f"signal: {signal.Signals(-returncode).name}"
        except ValueError:
            return f"signal {-returncode}"
    return f"exit status {returncode}"


# ---------------------------------------------------------------------------------- processes


class Slot:
    """One of a function's N processes, restarted whenever it exits."""

    def __init__(self, pool: FunctionPool, index: int):
        self.pool = pool
        self.index = index
        self.proc: subprocess.Popen | None = None
        self.incarnation: Incarnation | None = None
        self.in_flight: Invocation | None = None
        self.restarts = 0
        self.init_failures = 0  # processes that exited before asking for work
        self.log_path = pool.logs_dir / f"{pool.name}-{index}.log"
        self.thread = threading.Thread(target=self._supervise, name=f"{pool.name}-{index}", daemon=True)

    def status(self) -> dict:
        proc = self.proc
        inc = self.incarnation
        return {
            "slot": self.index,
            "pid": proc.pid if proc is not None and proc.returncode is None else None,
            "busy": self.in_flight is not None,
            "request_id": self.in_flight.id if self.in_flight else None,
            "restarts": self.restarts,
            "ready": bool(inc and inc.alive and inc.ready),
        }

    def kill_for_timeout(self) -> int | None:
        """Called with the pool lock held."""
        inc, proc = self.incarnation, self.proc
        if inc is not None:
            inc.alive = False  # it must take no more work, even before it is gone
            inc.killed = True
        if proc is not None:
            processes.signal_process(proc, signal.SIGKILL)
            return proc.pid
        return None

    def _supervise(self) -> None:
        # This thread starts the slot's processes and lives until the last of them is gone:
        # PR_SET_PDEATHSIG is tied to the thread that forked the child.
        pool = self.pool
        backoff = 0.0
        while not pool.stopped.is_set():
            inc = Incarnation(self)
            with pool.lock:
                self.incarnation = inc  # before the process exists: it may call in at once
            env = {
                **pool.env,
                "AWS_LAMBDA_RUNTIME_API": inc.address,
                "AWS_LAMBDA_LOG_STREAM_NAME": f"{time.strftime('%Y/%m/%d', time.gmtime())}/[$LATEST]{uuid.uuid4().hex}",
            }
            try:
                proc = processes.spawn(
                    [str(pool.binary)], env=env, log_path=self.log_path, cwd=pool.binary.parent,
                    banner=f"{pool.name}[{self.index}] runtime API {inc.address}",
                )
            except OSError as e:
                with pool.lock:
                    inc.alive = False
                inc.close()
                backoff = min(BACKOFF_MAX, max(BACKOFF_FIRST, backoff * 2))
                log.error("%s[%d]: cannot start %s: %s (retrying in %.1f s)", pool.name, self.index, pool.binary, e, backoff)
                pool.stopped.wait(backoff)
                continue
            with pool.lock:
                self.proc = proc
                if pool.stopping:
                    processes.signal_process(proc, signal.SIGKILL)
                pool.changed.notify_all()
            started = time.monotonic()
            returncode = proc.wait()
            pool.process_ended(inc, returncode)
            inc.close()
            if pool.stopped.is_set():
                return
            uptime = time.monotonic() - started
            if inc.killed or uptime >= HEALTHY_UPTIME:
                backoff = 0.0
            else:
                backoff = min(BACKOFF_MAX, max(BACKOFF_FIRST, backoff * 2))
            with pool.lock:
                self.restarts += 1
            if not inc.killed:
                log.warning(
                    "%s[%d]: process %d exited (%s) after %.1f s; restarting%s; see %s",
                    pool.name, self.index, proc.pid, describe_exit(returncode), uptime,
                    f" in {backoff:.1f} s" if backoff else "", self.log_path,
                )
            if backoff and pool.stopped.wait(backoff):
                return


class Incarnation:
    """One process of a slot and the Runtime API server that only it talks to."""

    def __init__(self, slot: Slot):
        self.slot = slot
        self.alive = True  # False once the process is dead or doomed: it takes no more work
        self.ready = False  # it asked for its first invocation
        self.killed = False  # we killed it (timeout)
        self.init_error: Result | None = None
        self.server = RuntimeApiServer(self)
        threading.Thread(target=self.server.serve_forever, name=f"runtime-api-{slot.pool.name}-{slot.index}", daemon=True).start()

    @property
    def address(self) -> str:
        host, port = self.server.server_address[:2]
        return f"{host}:{port}"

    def close(self) -> None:
        # serve_forever notices shutdown at its next poll; don't hold up the restart for it.
        def shut() -> None:
            self.server.shutdown()
            self.server.server_close()

        threading.Thread(target=shut, daemon=True).start()


class RuntimeApiServer(httputil.Server):
    def __init__(self, incarnation: Incarnation):
        self.incarnation = incarnation
        super().__init__(("127.0.0.1", 0), RuntimeApiHandler)


_RESULT_PATH = re.compile(re.escape(RUNTIME_PREFIX) + r"/invocation/([^/]+)/(response|error)")


class RuntimeApiHandler(httputil.QuietHandler):
    server: RuntimeApiServer

    def do_GET(self) -> None:
        if self.path == RUNTIME_PREFIX + "/invocation/next":
            self._next()
        else:
            httputil.send_json(self, 404, {"errorMessage": "not found", "errorType": "NotFound"})

    def do_POST(self) -> None:
        inc = self.server.incarnation
        pool = inc.slot.pool
        try:
            body = httputil.read_body(self, MAX_RESPONSE_BYTES)
        except httputil.BodyTooLarge:
            self.close_connection = True
            match = _RESULT_PATH.fullmatch(self.path)
            if match:
                pool.complete(inc, match.group(1), failure("Function.ResponseSizeTooLarge", "Response payload size exceeded maximum allowed payload size (6291556 bytes).", "function"))
            httputil.send_json(self, 413, {"errorMessage": "payload too large", "errorType": "RequestEntityTooLarge"})
            return
        except httputil.BadRequest as e:
            self.close_connection = True
            httputil.send_json(self, 400, {"errorMessage": str(e), "errorType": "InvalidRequest"})
            return

        if self.path == RUNTIME_PREFIX + "/init/error":
            inc.init_error = self._error_result(body)
            log.warning("%s[%d]: init error: %s", pool.name, inc.slot.index, inc.init_error.payload[:500].decode("utf-8", "replace"))
            httputil.send_json(self, 202, {"status": "OK"})
            return
        match = _RESULT_PATH.fullmatch(self.path)
        if not match:
            httputil.send_json(self, 404, {"errorMessage": "not found", "errorType": "NotFound"})
            return
        request_id, kind = match.groups()
        result = Result(True, body) if kind == "response" else self._error_result(body)
        if pool.complete(inc, request_id, result):
            httputil.send_json(self, 202, {"status": "OK"})
        else:
            httputil.send_json(self, 400, {"errorMessage": "Invalid request ID", "errorType": "InvalidRequestID"})

    def _error_result(self, body: bytes) -> Result:
        error_type = self.headers.get("Lambda-Runtime-Function-Error-Type")
        try:
            document = json.loads(body) if body else None
        except ValueError:
            document = None
        if isinstance(document, dict):
            error_type = error_type or document.get("errorType")
            payload = body
        else:
            payload = json.dumps({"errorMessage": body.decode("utf-8", "replace"), "errorType": error_type or "Unhandled"}).encode()
        return Result(False, payload, error_type or "Unhandled", "function")

    def _connection_alive(self) -> bool:
        try:
            readable, _, _ = select.select([self.connection], [], [], 0)
            return not readable or self.connection.recv(1, socket.MSG_PEEK) != b""
        except OSError:
            return False

    def _next(self) -> None:
        inc = self.server.incarnation
        pool = inc.slot.pool
        inv = pool.next_invocation(inc, self._connection_alive)
        if inv is None:
            self.close_connection = True
            return
        try:
            httputil.send(
                self,
                200,
                inv.payload,
                [
                    ("Lambda-Runtime-Aws-Request-Id", inv.id),
                    ("Lambda-Runtime-Deadline-Ms", str(inv.deadline_ms)),
                    ("Lambda-Runtime-Invoked-Function-Arn", pool.arn),
                    ("Lambda-Runtime-Trace-Id", inv.trace_id),
                ],
            )
            self.wfile.flush()
        except OSError:
            self.close_connection = True
            pool.hand_over_failed(inv, inc)
