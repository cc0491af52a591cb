"""Fixtures of the local stack's own tests: an emulator of their own, on a free port."""

from __future__ import annotations

import socket
import subprocess
import sys
import time

import pytest

# Switch threads far more often than the default 5 ms, so that races between requests inside
# the emulator show in a short test rather than once in a thousand.
EMULATOR_SWITCH_INTERVAL = 1e-5


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def emulator_url():
    port = free_port()
    code = (
        f"import sys; sys.setswitchinterval({EMULATOR_SWITCH_INTERVAL}); from moto.server import main; "
        "main(['-H', '127.0.0.1', '-p', sys.argv[1]])"
    )
    proc = subprocess.Popen([sys.executable, "-c", code, str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError("the emulator did not start") from None
                time.sleep(0.05)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(5)
