"""What the functions asked of AWS during a measured window, and what that costs on AWS.

Input: the emulator's request recording (moto's recorder, one JSON object per request: method,
url, headers, body) and the sizes of the items in the tables at the end of the run. Every
request is attributed by its user agent: the functions' (the Rust SDK), the event source
mappings' (the local stack's pollers, boto3: on AWS these are Lambda's own SQS calls, billed
to the account all the same) or the bench's own (the Rust SDK with app name `webhooks-bench`,
which only publishes events: counted as the producers' SendMessage calls).

Capacity is priced as AWS meters it (on-demand):
- DynamoDB writes: 1 WRU per started KiB of the item written (the new item for PutItem; the
  item as it stands after the run for UpdateItem and DeleteItem, the old size being unknown);
  transactions count double.
- DynamoDB reads: 1 RRU per started 4 KiB per item for GetItem and BatchGetItem (half for
  eventually consistent reads), and per started 4 KiB of everything a Query returned;
  transactions double. A key that holds nothing still costs the minimum.
- SQS: 1 request per started 64 KiB of payload (a batch's bodies added up); receives and
  deletes of at most 10 small messages are 1 each.
"""

from __future__ import annotations

import base64
import json
import math
import re
from collections import Counter, defaultdict
from dataclasses import dataclass, field

BENCH_APP = "app/webhooks-bench"
_SCOPE = re.compile(r"Credential=[^/]+/[^/]+/[^/]+/([^/]+)/aws4_request")
SQS_CHUNK = 64 * 1024
WRITE_UNIT = 1024
READ_UNIT = 4096


# ------------------------------------------------------------------------------ item sizes


def value_size(value: dict) -> float:
    """Bytes DynamoDB counts for one attribute value in its wire form ({"S": ...})."""
    (kind, v), = value.items()
    if kind == "S":
        return len(v.encode("utf-8"))
    if kind == "N":
        digits = len(v.strip("-").replace(".", "").lstrip("0")) or 1
        return math.ceil(digits / 2) + 1
    if kind == "B":
        return len(base64.b64decode(v))
    if kind in ("BOOL", "NULL"):
        return 1
    if kind == "L":
        return 3 + sum(value_size(x) + 1 for x in v)
    if kind == "M":
        return 3 + sum(len(k.encode("utf-8")) + value_size(x) + 1 for k, x in v.items())
    if kind == "SS":
        return sum(len(x.encode("utf-8")) for x in v)
    if kind == "NS":
        return sum(value_size({"N": x}) for x in v)
    if kind == "BS":
        return sum(len(base64.b64decode(x)) for x in v)
    return 0


def item_size(item: dict) -> float:
    return sum(len(name.encode("utf-8")) + value_size(v) for name, v in item.items())


def key_of(table_keys: dict[str, list[str]], table: str, item_or_key: dict) -> tuple:
    names = table_keys.get(table, ["pk", "sk"])
    return (table,) + tuple(json.dumps(item_or_key.get(n), sort_keys=True) for n in names)


@dataclass
class TableSizes:
    """Item sizes at the end of the run, by (table, key attributes), and by partition key."""

    keys: dict[str, list[str]]
    items: dict[tuple, float] = field(default_factory=dict)
    partitions: dict[tuple, float] = field(default_factory=dict)

    @classmethod
    def scan(cls, dynamodb, tables: list[str]) -> "TableSizes":
        keys = {}
        for table in tables:
            schema = dynamodb.describe_table(TableName=table)["Table"]["KeySchema"]
            keys[table] = [k["AttributeName"] for k in sorted(schema, key=lambda k: k["KeyType"])]  # HASH, RANGE
        sizes = cls(keys)
        for table in tables:
            pager = dynamodb.get_paginator("scan")
            for page in pager.paginate(TableName=table):
                for item in page.get("Items", []):
                    size = item_size(item)
                    sizes.items[key_of(keys, table, item)] = size
                    pk = (table, json.dumps(item.get(keys[table][0]), sort_keys=True))
                    sizes.partitions[pk] = sizes.partitions.get(pk, 0) + size
        return sizes

    def item(self, table: str, key: dict) -> float:
        return self.items.get(key_of(self.keys, table, key), 0)

    def partition(self, table: str, pk_value: dict) -> float:
        return self.partitions.get((table, json.dumps(pk_value, sort_keys=True)), 0)


# ------------------------------------------------------------------------------ requests


@dataclass
class Request:
    origin: str  # function | esm | bench | other
    service: str
    operation: str
    body: dict
    raw_size: int


def header(headers: dict, name: str) -> str:
    for k, v in headers.items():
        if k.lower() == name.lower():
            return v
    return ""


def entries(text: str):
    """The recorded objects. The recorder's threads append without a lock, so two objects can
    share a line: read object after object rather than line by line."""
    decoder = json.JSONDecoder()
    i, n = 0, len(text)
    while i < n:
        while i < n and text[i] in " \r\n\t":
            i += 1
        if i >= n:
            break
        entry, i = decoder.raw_decode(text, i)
        yield entry


def parse_recording(text: str) -> list[Request]:
    out = []
    for entry in entries(text):
        headers = entry.get("headers") or {}
        raw = entry.get("body") or ""
        data = base64.b64decode(raw) if entry.get("body_encoded") else raw.encode("utf-8")
        agent = header(headers, "User-Agent") + " " + header(headers, "X-Amz-User-Agent")
        if BENCH_APP in agent:
            origin = "bench"
        elif "aws-sdk-rust" in agent:
            origin = "function"
        elif "Boto3" in agent or "Botocore" in agent:
            origin = "esm"
        else:
            origin = "other"
        scope = _SCOPE.search(header(headers, "Authorization"))
        service = scope.group(1) if scope else "unknown"
        target = header(headers, "X-Amz-Target")
        if target:
            operation = target.rsplit(".", 1)[-1]
            try:
                body = json.loads(data or b"{}")
            except ValueError:
                body = {}
        else:
            from urllib.parse import parse_qs

            form = parse_qs(data.decode("utf-8", "replace"))
            operation = form.get("Action", ["?"])[0]
            body = {k: v[0] for k, v in form.items()}
        out.append(Request(origin, service, operation, body, len(data)))
    return out


# ------------------------------------------------------------------------------ units


def sqs_units(r: Request) -> int:
    if r.operation == "SendMessage":
        size = len(r.body.get("MessageBody", "").encode("utf-8")) + len(json.dumps(r.body.get("MessageAttributes", {})))
        return max(1, math.ceil(size / SQS_CHUNK))
    if r.operation == "SendMessageBatch":
        size = sum(len(e.get("MessageBody", "").encode("utf-8")) + len(json.dumps(e.get("MessageAttributes", {}))) for e in r.body.get("Entries", []))
        return max(1, math.ceil(size / SQS_CHUNK))
    return 1


def read_units(size: float, consistent: bool, transactional: bool = False) -> float:
    units = max(1, math.ceil(size / READ_UNIT))
    if transactional:
        return 2 * units
    return units if consistent else units / 2


def write_units(size: float, transactional: bool = False) -> float:
    units = max(1, math.ceil(size / WRITE_UNIT))
    return 2 * units if transactional else units


def dynamodb_units(r: Request, sizes: TableSizes) -> tuple[float, float]:
    """(read units, write units) of one DynamoDB request."""
    b = r.body
    op = r.operation
    consistent = bool(b.get("ConsistentRead"))
    if op == "PutItem":
        return 0, write_units(item_size(b.get("Item", {})))
    if op in ("UpdateItem", "DeleteItem"):
        return 0, write_units(sizes.item(b.get("TableName", ""), b.get("Key", {})))
    if op == "GetItem":
        return read_units(sizes.item(b.get("TableName", ""), b.get("Key", {})), consistent), 0
    if op == "BatchGetItem":
        rru = 0.0
        for table, request in b.get("RequestItems", {}).items():
            c = bool(request.get("ConsistentRead"))
            rru += sum(read_units(sizes.item(table, k), c) for k in request.get("Keys", []))
        return rru, 0
    if op == "Query":
        table = b.get("TableName", "")
        if b.get("IndexName"):
            return read_units(0, False), 0
        values = b.get("ExpressionAttributeValues", {})
        pk = values.get(":pk")
        return read_units(sizes.partition(table, pk) if pk else 0, consistent), 0
    if op == "BatchWriteItem":
        wru = 0.0
        for table, writes in b.get("RequestItems", {}).items():
            for w in writes:
                if "PutRequest" in w:
                    wru += write_units(item_size(w["PutRequest"].get("Item", {})))
                else:
                    wru += write_units(sizes.item(table, w.get("DeleteRequest", {}).get("Key", {})))
        return 0, wru
    if op == "TransactWriteItems":
        wru = 0.0
        for action in b.get("TransactItems", []):
            ((kind, spec),) = action.items()
            if kind == "Put":
                wru += write_units(item_size(spec.get("Item", {})), True)
            else:  # Update, Delete, ConditionCheck
                wru += write_units(sizes.item(spec.get("TableName", ""), spec.get("Key", {})), True)
        return 0, wru
    if op == "TransactGetItems":
        rru = sum(read_units(sizes.item(a["Get"].get("TableName", ""), a["Get"].get("Key", {})), True, True) for a in b.get("TransactItems", []))
        return rru, 0
    return 0, 0


def is_success_log(r: Request, deliveries_table: str) -> bool:
    """A PutItem of a `succeeded` entry in the delivery log (what WEBHOOKS_LOG_SUCCESSES=false saves)."""
    return (
        r.service == "dynamodb"
        and r.operation == "PutItem"
        and r.body.get("TableName") == deliveries_table
        and r.body.get("Item", {}).get("status", {}).get("S") == "succeeded"
    )


@dataclass
class Tally:
    requests: Counter = field(default_factory=Counter)  # "service:Operation" -> count
    sqs_units: float = 0
    rru: float = 0
    wru: float = 0
    kms: int = 0
    sns: int = 0
    success_logs: int = 0
    success_log_wru: float = 0

    def as_dict(self) -> dict:
        return {
            "requests": dict(sorted(self.requests.items())),
            "sqs_units": self.sqs_units,
            "dynamodb_rru": self.rru,
            "dynamodb_wru": self.wru,
            "kms_requests": self.kms,
            "sns_requests": self.sns,
            "success_log_puts": self.success_logs,
            "success_log_wru": self.success_log_wru,
        }


def tally(requests: list[Request], sizes: TableSizes, deliveries_table: str, origins=("function", "esm", "bench")) -> Tally:
    t = Tally()
    for r in requests:
        if r.origin not in origins:
            continue
        if r.origin == "bench" and not (r.service == "sqs" and r.operation == "SendMessage"):
            continue  # the bench's own set-up and checks are not the pipeline's
        t.requests[f"{r.origin}/{r.service}:{r.operation}"] += 1
        if r.service == "sqs":
            t.sqs_units += sqs_units(r)
        elif r.service == "dynamodb":
            rru, wru = dynamodb_units(r, sizes)
            t.rru += rru
            t.wru += wru
            if is_success_log(r, deliveries_table):
                t.success_logs += 1
                t.success_log_wru += wru
        elif r.service == "kms":
            t.kms += 1
        elif r.service == "sns":
            t.sns += 1
    return t


def by_operation(requests: list[Request], service: str, origin: str = "function") -> dict[str, int]:
    counts: dict[str, int] = defaultdict(int)
    for r in requests:
        if r.origin == origin and r.service == service:
            counts[r.operation] += 1
    return dict(sorted(counts.items()))
