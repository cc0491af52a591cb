"""Starting and stopping child processes so that none outlives the local stack.

* Each child gets `PR_SET_PDEATHSIG = SIGKILL`: if the runner itself is SIGKILLed (a test
  harness timing out, an OOM kill), the kernel kills its children too. The signal fires when
  the *thread* that forked the child exits, so children are only started from threads that
  live at least as long as the child (the main thread, or a slot's supervisor thread, which
  waits for its child before it ends).
* Each child runs in its own session: a Ctrl-C in the terminal reaches only the runner, which
  then stops everything in order instead of racing its children's deaths.
* Children never read the terminal (stdin is /dev/null) and write to a log file.
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import time
from pathlib import Path

_PR_SET_PDEATHSIG = 1

try:
    _libc = ctypes.CDLL(None, use_errno=True)
    _prctl = _libc.prctl
except (OSError, AttributeError):  # not Linux: children merely lack the safety net
    _prctl = None


def _die_with_parent(parent_pid: int):
    def preexec() -> None:
        if _prctl is not None:
            _prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        # The parent may have died between fork and prctl: then nobody would kill us.
        if os.getppid() != parent_pid:
            os.kill(os.getpid(), signal.SIGKILL)

    return preexec


def spawn(argv: list[str], env: dict[str, str], log_path: Path, cwd: Path | None = None, banner: str | None = None) -> subprocess.Popen:
    """Starts `argv` with exactly `env`, output appended to `log_path`."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab", buffering=0) as log:
        if banner:
            log.write(f"--- {time.strftime('%Y-%m-%dT%H:%M:%S%z')} {banner}\n".encode())
        return subprocess.Popen(
            argv,
            env=env,
            cwd=str(cwd) if cwd else None,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            close_fds=True,
            preexec_fn=_die_with_parent(os.getpid()),
        )


def signal_process(proc: subprocess.Popen, sig: int) -> None:
    """Sends `sig` unless the process has already been reaped (its pid may be reused)."""
    if proc.returncode is None:
        try:
            proc.send_signal(sig)
        except (ProcessLookupError, OSError):
            pass


def stop_all(procs: list[subprocess.Popen], grace: float = 2.0) -> None:
    """SIGTERM, wait up to `grace` seconds in total, then SIGKILL what is left and reap it."""
    for proc in procs:
        signal_process(proc, signal.SIGTERM)
    deadline = time.monotonic() + grace
    for proc in procs:
        try:
            proc.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            pass
    for proc in procs:
        if proc.poll() is None:
            signal_process(proc, signal.SIGKILL)
            try:
                proc.wait(timeout=2)
            except subprocess.TimeoutExpired:
                pass


def tail(path: Path, lines: int = 20) -> str:
    """The end of a log file, for error messages."""
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 8192))
            return "\n".join(f.read().decode("utf-8", "replace").splitlines()[-lines:])
    except OSError:
        return ""

