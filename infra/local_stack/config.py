"""Settings of the local stack, from the command line and the environment.

Everything that differs between a developer's `make dev` and a test's private stack is here:
ports (0 = pick a free one, so tests can run several stacks in parallel), the state
directory, how many processes per function, template parameter overrides and the admin key.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import secrets
import string
from dataclasses import dataclass, field
from pathlib import Path

from .fault_proxy import FaultSettings, settings_from_env

# moto's default account; every ARN the emulator hands out carries it.
ACCOUNT_ID = "123456789012"
DEFAULT_REGION = "us-east-1"
STACK_NAME = "webhooks-local"

# Credentials for everything local: the emulator accepts any, and real ones must never leak
# into a process that talks to it.
FAKE_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "test",
    "AWS_SECRET_ACCESS_KEY": "test",
    "AWS_SESSION_TOKEN": "test",
}

ADMIN_KEY_PREFIX = "whk_"
ADMIN_KEY_RANDOM_CHARS = 40
_BASE62 = string.digits + string.ascii_uppercase + string.ascii_lowercase


class ConfigError(Exception):
    """A setting is missing or malformed; the message says which and how to fix it."""


@dataclass
class AdminKey:
    """The admin API key: its hash goes to the template, the key itself (when known) to the user."""

    sha256: str
    key: str | None  # None when only the hash was given


@dataclass
class Config:
    state_dir: Path
    bin_dir: Path
    template: Path
    processes: int
    parameter_overrides: dict[str, str]
    emulator_port: int
    http_port: int
    region: str
    admin_key: AdminKey
    verbose: bool = False
    account_id: str = ACCOUNT_ID
    stack_name: str = STACK_NAME
    # The runner's own environment, read once (WEBHOOKS_* overrides for the functions).
    environ: dict[str, str] = field(default_factory=dict)
    # WEBHOOKS_LOCAL_FAULT_*: a fault-injecting proxy between the functions and the emulator.
    faults: FaultSettings | None = None

    @property
    def logs_dir(self) -> Path:
        return self.state_dir / "logs"

    @property
    def stack_file(self) -> Path:
        return self.state_dir / "stack.json"


def sha256_hex(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def generate_admin_key() -> str:
    return ADMIN_KEY_PREFIX + "".join(secrets.choice(_BASE62) for _ in range(ADMIN_KEY_RANDOM_CHARS))


def admin_key_from_env(environ: dict[str, str]) -> AdminKey:
    """A given hash wins, then a given key, else a fresh random key."""
    given_hash = environ.get("WEBHOOKS_ADMIN_KEY_SHA256", "").strip()
    if given_hash:
        digest = given_hash.lower()
        if len(digest) != 64 or any(c not in string.hexdigits for c in digest):
            raise ConfigError("WEBHOOKS_ADMIN_KEY_SHA256 must be 64 hex digits (a SHA-256)")
        return AdminKey(sha256=digest, key=None)
    given_key = environ.get("WEBHOOKS_ADMIN_KEY", "")
    if given_key:
        # The API takes only keys of this shape: another would be printed and then refused.
        random_part = given_key.removeprefix(ADMIN_KEY_PREFIX)
        if not given_key.startswith(ADMIN_KEY_PREFIX) or len(random_part) != ADMIN_KEY_RANDOM_CHARS or any(
            c not in _BASE62 for c in random_part
        ):
            raise ConfigError(
                f"WEBHOOKS_ADMIN_KEY must be {ADMIN_KEY_PREFIX} followed by {ADMIN_KEY_RANDOM_CHARS} letters and digits"
            )
        return AdminKey(sha256=sha256_hex(given_key), key=given_key)
    key = generate_admin_key()
    return AdminKey(sha256=sha256_hex(key), key=key)


def _port(environ: dict[str, str], name: str, default: int) -> int:
    raw = environ.get(name, "").strip()
    if not raw:
        return default
    try:
        port = int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a port number (0 = any free port), got {raw!r}") from None
    if not 0 <= port <= 65535:
        raise ConfigError(f"{name} must be between 0 and 65535, got {port}")
    return port


def _overrides(items: list[str]) -> dict[str, str]:
    result: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"--parameter-overrides expects Key=Value, got {item!r}")
        result[key] = value
    return result


def parse(argv: list[str] | None = None, environ: dict[str, str] | None = None) -> Config:
    environ = dict(os.environ if environ is None else environ)
    default_processes = environ.get("WEBHOOKS_LOCAL_PROCESSES", "").strip() or "2"

    parser = argparse.ArgumentParser(
        prog="python -m local_stack",
        description="Run the webhook service locally: AWS emulator, the functions as real "
        "processes, an emulated HTTP API and SQS event source mappings.",
        epilog="Environment: WEBHOOKS_EMULATOR_PORT (4566), WEBHOOKS_HTTP_PORT (3000), 0 = any "
        "free port; AWS_REGION (us-east-1); WEBHOOKS_ADMIN_KEY or WEBHOOKS_ADMIN_KEY_SHA256 "
        "(default: a fresh key); WEBHOOKS_LOCAL_PROCESSES (2); WEBHOOKS_LOCAL_FAULT_RATE (0 = off), "
        "WEBHOOKS_LOCAL_FAULT_SEED, WEBHOOKS_LOCAL_FAULT_AFTER: AWS faults injected between the "
        "functions and the emulator; any WEBHOOKS_* variable of a function's template "
        "environment overrides it.",
    )
    parser.add_argument("--state-dir", default=".dev", help="stack.json and logs/ go here (default .dev)")
    # Cargo puts the binaries under CARGO_TARGET_DIR when it is set.
    default_bin_dir = str(Path(os.environ.get("CARGO_TARGET_DIR") or "target") / "debug")
    parser.add_argument("--bin-dir", default=default_bin_dir, help="where the function binaries are")
    parser.add_argument("--template", default="template.yaml", help="the SAM template")
    parser.add_argument("--processes", default=default_processes, help="processes per function")
    parser.add_argument(
        "--parameter-overrides", nargs="*", default=[], metavar="KEY=VALUE", help="template parameters"
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log every HTTP request and invocation")
    args = parser.parse_args(argv)

    try:
        processes = int(args.processes)
    except ValueError:
        raise ConfigError(f"--processes / WEBHOOKS_LOCAL_PROCESSES must be a number, got {args.processes!r}") from None
    if processes < 1:
        raise ConfigError("--processes must be at least 1")
    try:
        faults = settings_from_env(environ)
    except ValueError as e:
        raise ConfigError(str(e)) from None

    return Config(
        state_dir=Path(args.state_dir).absolute(),
        bin_dir=Path(args.bin_dir).absolute(),
        template=Path(args.template).absolute(),
        processes=processes,
        parameter_overrides=_overrides(args.parameter_overrides),
        emulator_port=_port(environ, "WEBHOOKS_EMULATOR_PORT", 4566),
        http_port=_port(environ, "WEBHOOKS_HTTP_PORT", 3000),
        region=environ.get("AWS_REGION", "").strip() or DEFAULT_REGION,
        admin_key=admin_key_from_env(environ),
        verbose=args.verbose,
        environ=environ,
        faults=faults,
    )
