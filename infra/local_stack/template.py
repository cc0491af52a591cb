"""Reading `template.yaml` for the local stack.

The emulator (moto) implements CloudFormation for the plain resources (queues, tables,
topics, keys) but not the SAM transform. So instead of interpreting CloudFormation ourselves:

* the `AWS::Serverless::*` resources, `Transform` and `Globals` are removed, and so are the
  resources without local effect (`NOT_EMULATED_TYPES`: alarms, queue policies) and the
  Outputs and Conditions that point at removed resources; what the kept resources say about
  removed ones (`!Ref SomeFunction`, a `DependsOn`) is replaced by local stand-in values;
* every value the local stack needs from the removed resources (each function's environment,
  timeout and memory, each SQS event's queue and scaling) is added to the template as a
  generated Output, so the emulator's CloudFormation resolves `!Ref`, `!GetAtt`, `!Sub` and
  parameters for us, and we read the results back from DescribeStacks.

`!Ref` and friends are YAML short tags that a plain YAML loader rejects; `cfnlint.decode`
reads them into the long JSON form (`{"Ref": ...}`, `{"Fn::GetAtt": [...]}`).
"""

from __future__ import annotations

import copy
import json
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

SERVERLESS_PREFIX = "AWS::Serverless::"
GENERATED_OUTPUT_PREFIX = "LocalStackValue"

# Plain resources that change nothing in a local run and that the emulator's CloudFormation
# does not create: they are removed like the serverless ones (references to them get local
# stand-ins) and listed once at start-up. Alarms watch CloudWatch metrics, which nothing
# emits locally; resource policies grant what the emulator never checks.
NOT_EMULATED_TYPES = frozenset({"AWS::CloudWatch::Alarm", "AWS::SQS::QueuePolicy"})

# Lambda's defaults when neither the function nor Globals say otherwise.
DEFAULT_TIMEOUT = 3
DEFAULT_MEMORY = 128
# API Gateway's default (and maximum) integration timeout for HTTP APIs.
DEFAULT_INTEGRATION_TIMEOUT_MS = 30000

_SUB_VARIABLE = re.compile(r"\$\{(?!!)([^}]+)\}")


class TemplateError(Exception):
    """The template cannot be run locally; the message names the resource and the problem."""


# ---------------------------------------------------------------------------------- decoding


def _plain(value: Any) -> Any:
    """cfnlint's node classes (dict/str subclasses carrying line marks) to plain Python."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, str):
        return str(value)
    return value


def decode(path: Path) -> dict:
    from cfnlint.decode import decode as cfn_decode  # slow import: only when needed

    if not path.is_file():
        raise TemplateError(f"template not found: {path}")
    template, matches = cfn_decode(str(path))
    if matches or template is None:
        details = "; ".join(str(m) for m in matches) or "unreadable"
        raise TemplateError(f"cannot read {path}: {details}")
    return _plain(template)


# ---------------------------------------------------------------------------------- expressions


def is_intrinsic(value: Any) -> bool:
    if not isinstance(value, dict) or len(value) != 1:
        return False
    (key,) = value
    return key == "Ref" or key.startswith("Fn::")


def _getatt_parts(arg: Any) -> tuple[str, str]:
    if isinstance(arg, str):
        name, _, attr = arg.partition(".")
        return name, attr
    if isinstance(arg, list) and len(arg) == 2 and isinstance(arg[0], str):
        return arg[0], arg[1] if isinstance(arg[1], str) else ""
    return "", ""


def _sub_parts(arg: Any) -> tuple[str, dict]:
    if isinstance(arg, str):
        return arg, {}
    if isinstance(arg, list) and len(arg) == 2 and isinstance(arg[0], str) and isinstance(arg[1], dict):
        return arg[0], arg[1]
    return "", {}


def references(value: Any) -> set[str]:
    """Logical ids (and parameter names) a value refers to through Ref, GetAtt, Sub or DependsOn."""
    found: set[str] = set()

    def walk(v: Any) -> None:
        if isinstance(v, list):
            for item in v:
                walk(item)
            return
        if not isinstance(v, dict):
            return
        for key, arg in v.items():
            if key == "Ref" and isinstance(arg, str):
                found.add(arg)
            elif key == "Fn::GetAtt":
                found.add(_getatt_parts(arg)[0])
            elif key == "Fn::Sub":
                text, variables = _sub_parts(arg)
                for name in _SUB_VARIABLE.findall(text):
                    base = name.split(".", 1)[0]
                    if base not in variables and not name.startswith("AWS::"):
                        found.add(base)
                walk(variables)
            elif key == "DependsOn":
                found.update([arg] if isinstance(arg, str) else [a for a in arg if isinstance(a, str)])
            else:
                walk(arg)

    walk(value)
    found.discard("")
    return found


# Stand-in values for removed resources: {logical id: {"": Ref value, attribute: value}}.
StandIns = dict[str, dict[str, str]]


def substitute_removed(value: Any, stand_ins: StandIns) -> Any:
    """Replaces references to removed resources by their local stand-in values."""

    def attribute(name: str, attr: str) -> str:
        values = stand_ins[name]
        if attr not in values:
            raise TemplateError(
                f"{name}.{attr} has no local equivalent (known: {', '.join(a for a in values if a) or 'none'})"
            )
        return values[attr]

    def walk(v: Any) -> Any:
        if isinstance(v, list):
            return [walk(item) for item in v]
        if not isinstance(v, dict):
            return v
        if is_intrinsic(v):
            (key, arg), = v.items()
            if key == "Ref" and arg in stand_ins:
                return stand_ins[arg][""]
            if key == "Fn::GetAtt":
                name, attr = _getatt_parts(arg)
                if name in stand_ins:
                    return attribute(name, attr)
            if key == "Fn::Sub":
                text, variables = _sub_parts(arg)

                def repl(match: re.Match) -> str:
                    name = match.group(1)
                    base, _, attr = name.partition(".")
                    if base in stand_ins and base not in variables:
                        return attribute(base, attr).replace("${", "${!")
                    return match.group(0)

                text = _SUB_VARIABLE.sub(repl, text)
                return {"Fn::Sub": [text, walk(variables)] if variables else text}
        result = {}
        for key, item in v.items():
            if key == "DependsOn":
                items = [item] if isinstance(item, str) else item
                kept = [d for d in items if d not in stand_ins]
                if kept:
                    result[key] = kept
                continue
            result[key] = walk(item)
        return result

    return walk(value)


@dataclass(frozen=True)
class Deferred:
    """A value the emulator's CloudFormation computes; read back from the named stack Output."""

    output: str


class Outputs:
    """Collects expressions as generated Outputs and later puts their results back in place."""

    def __init__(self, stand_ins: StandIns):
        self.stand_ins = stand_ins
        self.generated: dict[str, dict] = {}
        self._by_expression: dict[str, str] = {}

    def defer(self, value: Any) -> Any:
        """Plain values stay; every intrinsic inside `value` becomes a Deferred."""
        if is_intrinsic(value):
            value = substitute_removed(value, self.stand_ins)
            if not is_intrinsic(value):
                return value  # it named a removed resource: its stand-in is the value
            fingerprint = json.dumps(value, sort_keys=True)
            key = self._by_expression.get(fingerprint)
            if key is None:  # one Output per distinct expression
                key = self._by_expression[fingerprint] = f"{GENERATED_OUTPUT_PREFIX}{len(self.generated)}"
                self.generated[key] = {"Value": value}
            return Deferred(key)
        if isinstance(value, dict):
            return {k: self.defer(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self.defer(v) for v in value]
        return value


def resolve(value: Any, results: dict[str, str]) -> Any:
    """Replaces every Deferred in `value` by the stack Output it names."""
    if isinstance(value, Deferred):
        if value.output not in results:
            raise TemplateError(f"the emulator did not compute stack output {value.output}")
        return results[value.output]
    if isinstance(value, dict):
        return {k: resolve(v, results) for k, v in value.items()}
    if isinstance(value, list):
        return [resolve(v, results) for v in value]
    return value


# ---------------------------------------------------------------------------------- functions


@dataclass
class HttpRoute:
    """One `HttpApi` event: `method` is upper case or ANY; path None means the `$default` route."""

    event: str
    method: str
    path: str | None
    timeout_ms: int = DEFAULT_INTEGRATION_TIMEOUT_MS

    @property
    def route_key(self) -> str:
        return "$default" if self.path is None else f"{self.method} {self.path}"


@dataclass
class SqsEvent:
    """One `SQS` event, i.e. one event source mapping."""

    event: str
    queue_arn: Any
    batch_size: Any = 10
    max_concurrency: Any = None
    report_batch_item_failures: bool = False
    enabled: Any = True


@dataclass
class FunctionSpec:
    logical_id: str
    binary: str
    handler: str
    runtime: str
    timeout: Any
    memory: Any
    env: dict[str, Any]
    env_source: dict[str, Any]  # the variables as written in the template
    http_routes: list[HttpRoute] = field(default_factory=list)
    sqs_events: list[SqsEvent] = field(default_factory=list)

    def resolved(self, results: dict[str, str]) -> "FunctionSpec":
        """The same function with every computed value filled in and typed."""
        name = self.logical_id

        def number(value: Any, what: str) -> int:
            try:
                return int(float(resolve(value, results)))
            except (TypeError, ValueError):
                raise TemplateError(f"{name}: {what} is not a number: {value!r}") from None

        def flag(value: Any) -> bool:
            value = resolve(value, results)
            return value if isinstance(value, bool) else str(value).lower() == "true"

        env = {k: _env_string(resolve(v, results)) for k, v in self.env.items()}
        sqs = [
            replace(
                e,
                queue_arn=str(resolve(e.queue_arn, results)),
                batch_size=number(e.batch_size, f"{e.event}.BatchSize"),
                max_concurrency=None if e.max_concurrency is None else number(e.max_concurrency, f"{e.event}.MaximumConcurrency"),
                enabled=flag(e.enabled),
            )
            for e in self.sqs_events
        ]
        return replace(
            self,
            timeout=number(self.timeout, "Timeout"),
            memory=number(self.memory, "MemorySize"),
            env=env,
            sqs_events=sqs,
        )


def _env_string(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return ""
    return str(value)


def _function_spec(logical_id: str, resource: dict, globals_fn: dict, outputs: Outputs) -> FunctionSpec:
    props = resource.get("Properties") or {}
    binary = ((resource.get("Metadata") or {}).get("BuildProperties") or {}).get("Binary")
    if not isinstance(binary, str) or not binary:
        raise TemplateError(f"{logical_id}: Metadata.BuildProperties.Binary names no binary")

    def prop(name: str, default: Any) -> Any:
        return props.get(name, globals_fn.get(name, default))

    env: dict[str, Any] = {}
    for source in (globals_fn, props):
        variables = ((source.get("Environment") or {}).get("Variables")) or {}
        env.update(variables)

    spec = FunctionSpec(
        logical_id=logical_id,
        binary=binary,
        handler=str(prop("Handler", "bootstrap")),
        runtime=str(prop("Runtime", "provided.al2023")),
        timeout=outputs.defer(prop("Timeout", DEFAULT_TIMEOUT)),
        memory=outputs.defer(prop("MemorySize", DEFAULT_MEMORY)),
        env={k: outputs.defer(v) for k, v in env.items()},
        env_source=env,
    )

    for event_name, event in (props.get("Events") or {}).items():
        kind = event.get("Type")
        ep = event.get("Properties") or {}
        if kind == "HttpApi":
            path, method = ep.get("Path"), ep.get("Method")
            if path is None and method is None:
                route = HttpRoute(event_name, "ANY", None)
            else:
                method = str(method or "ANY").upper()
                route = HttpRoute(event_name, "ANY" if method in ("ANY", "X-AMAZON-APIGATEWAY-ANY-METHOD") else method, str(path or "/"))
            if isinstance(ep.get("TimeoutInMillis"), int):
                route.timeout_ms = ep["TimeoutInMillis"]
            spec.http_routes.append(route)
        elif kind == "SQS":
            if "Queue" not in ep:
                raise TemplateError(f"{logical_id}.{event_name}: an SQS event needs a Queue")
            types = ep.get("FunctionResponseTypes") or []
            spec.sqs_events.append(
                SqsEvent(
                    event=event_name,
                    queue_arn=outputs.defer(ep["Queue"]),
                    batch_size=outputs.defer(ep.get("BatchSize", 10)),
                    max_concurrency=outputs.defer((ep.get("ScalingConfig") or {}).get("MaximumConcurrency")),
                    report_batch_item_failures="ReportBatchItemFailures" in types if isinstance(types, list) else False,
                    enabled=outputs.defer(ep.get("Enabled", True)),
                )
            )
        # Other event kinds (schedules, streams, ...) have no local emulation yet.
    return spec


# ---------------------------------------------------------------------------------- the template


@dataclass
class LocalTemplate:
    parameters: dict[str, dict]
    resources: dict[str, dict]  # the kept (plain CloudFormation) resources, as written
    functions: list[FunctionSpec]
    emulator_template: dict  # what CreateStack gets
    removed: dict[str, str]  # logical id -> type of every removed resource
    not_emulated: dict[str, str]  # the removed ones of NOT_EMULATED_TYPES, logical id -> type
    skipped_event_kinds: list[str]
    ttl: dict[str, Any]  # table logical id -> TimeToLiveSpecification (possibly Deferred)


def load(path: Path, stand_in_context: dict[str, str]) -> LocalTemplate:
    """Reads the template and prepares what the emulator creates and what we run.

    `stand_in_context` holds `region`, `account_id`, `api_id` and `api_url`, from which the
    local stand-ins for removed resources are made.
    """
    raw = decode(path)
    resources = raw.get("Resources") or {}
    if not isinstance(resources, dict) or not resources:
        raise TemplateError(f"{path}: no Resources")

    removed = {
        lid: r.get("Type", "")
        for lid, r in resources.items()
        if str(r.get("Type", "")).startswith(SERVERLESS_PREFIX) or r.get("Type") in NOT_EMULATED_TYPES
    }
    stand_ins = _stand_ins(removed, stand_in_context)
    outputs = Outputs(stand_ins)

    globals_fn = ((raw.get("Globals") or {}).get("Function")) or {}
    functions = [
        _function_spec(lid, resources[lid], globals_fn, outputs)
        for lid, kind in removed.items()
        if kind == "AWS::Serverless::Function"
    ]
    skipped = sorted(
        {
            f"{lid}.{name} ({e.get('Type')})"
            for lid, kind in removed.items()
            if kind == "AWS::Serverless::Function"
            for name, e in ((resources[lid].get("Properties") or {}).get("Events") or {}).items()
            if e.get("Type") not in ("HttpApi", "SQS")
        }
    )

    kept = {lid: r for lid, r in resources.items() if lid not in removed}
    ttl = {
        lid: outputs.defer(r["Properties"]["TimeToLiveSpecification"])
        for lid, r in kept.items()
        if r.get("Type") == "AWS::DynamoDB::Table" and (r.get("Properties") or {}).get("TimeToLiveSpecification")
    }

    emulator = {k: copy.deepcopy(v) for k, v in raw.items() if k not in ("Transform", "Globals", "Outputs", "Conditions", "Resources")}
    emulator["Resources"] = substitute_removed(kept, stand_ins)
    conditions = {k: v for k, v in (raw.get("Conditions") or {}).items() if not references(v) & removed.keys()}
    if conditions:
        emulator["Conditions"] = conditions
    kept_outputs = {
        k: v
        for k, v in (raw.get("Outputs") or {}).items()
        if not references(v) & removed.keys() and (v.get("Condition") is None or v.get("Condition") in conditions)
    }
    emulator["Outputs"] = {**kept_outputs, **outputs.generated}
    if not emulator["Outputs"]:
        del emulator["Outputs"]

    return LocalTemplate(
        parameters=raw.get("Parameters") or {},
        resources=kept,
        functions=functions,
        emulator_template=emulator,
        removed=removed,
        not_emulated={lid: kind for lid, kind in removed.items() if kind in NOT_EMULATED_TYPES},
        skipped_event_kinds=skipped,
        ttl=ttl,
    )


def _stand_ins(removed: dict[str, str], ctx: dict[str, str]) -> StandIns:
    region, account = ctx["region"], ctx["account_id"]
    result: StandIns = {}
    for lid, kind in removed.items():
        if kind == "AWS::Serverless::Function":
            arn = f"arn:aws:lambda:{region}:{account}:function:{lid}"
            result[lid] = {"": lid, "Arn": arn}
        elif kind in ("AWS::Serverless::HttpApi", "AWS::Serverless::Api"):
            result[lid] = {"": ctx["api_id"], "ApiEndpoint": ctx["api_url"]}
        else:
            result[lid] = {"": lid}
    return result


def function_by_binary(functions: list[FunctionSpec]) -> dict[str, FunctionSpec]:
    seen: dict[str, FunctionSpec] = {}
    for fn in functions:
        if fn.binary in seen:
            raise TemplateError(f"{fn.logical_id} and {seen[fn.binary].logical_id} both name binary {fn.binary}")
        seen[fn.binary] = fn
    return seen

