"""What the functions asked of AWS during a measured window, and what that costs on AWS.

Input: the emulator's request recording (moto's recorder, one JSON object per request: method,
url, headers, body, in the order they arrived) and the tables' items at the start of the
window (a snapshot; for short recordings without one, a scan at the end of the run). Every
request is attributed by its user agent: the functions' (the Rust SDK), the event source
mappings' (the local stack's pollers, boto3: on AWS these are Lambda's own SQS calls, billed
to the account all the same) or the bench's own (the Rust SDK with app name `webhooks-bench`,
which only publishes events: counted as the producers' SendMessage calls).

Capacity is priced as AWS meters it (on-demand), replaying every write over the tables'
items so each request meets the items as they stood when it was made:
- DynamoDB writes: 1 WRU per started KiB of the larger of the item before and after (PutItem,
  UpdateItem, DeleteItem; UpdateItem's expression is evaluated: SET, REMOVE, ADD, DELETE,
  `if_not_exists`, `list_append`, `a + b`); transactions count double. Conditions are taken to
  hold, except `attribute_not_exists(...)` alone on an item that exists: that write fails, is
  billed on the existing item and changes nothing.
- Every global secondary index (read from the tables the local stack created from
  template.yaml) takes its own writes: a put of the projected item where an item enters the
  index, a delete where it leaves, both where its index key changes, one write where a
  projected attribute changes (at the larger projected size).
- DynamoDB reads: 1 RRU per started 4 KiB per item for GetItem and BatchGetItem (half for
  eventually consistent reads), and per started 4 KiB of the whole partition for a Query
  (DynamoDB filters after reading; a sort key condition would read less: this errs high);
  transactions double. A key that holds nothing still costs the minimum. A Query of an index
  is counted at the minimum (the pipeline makes none; counted in `index_queries_at_minimum`).
- SQS: 1 request per started 64 KiB of payload (a batch's bodies added up); receives and
  deletes of at most 10 small messages are 1 each.

`grow`: every copy of the bench's padded payload (`[pad` `y`... `]`) in the recording and the
snapshot made longer, to price the same run at a larger payload.

`python aws_usage.py snapshot stack.json out.json` writes the tables' keys, indexes and items.
"""

from __future__ import annotations

import base64
import json
import math
import re
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from decimal import Decimal

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
class Index:
    """A global secondary index: its key attributes and what it projects."""

    name: str
    keys: list[str]
    projection: str  # ALL | KEYS_ONLY | INCLUDE
    include: list[str] = field(default_factory=list)

    def holds(self, item: dict | None) -> bool:
        return item is not None and all(k in item for k in self.keys)

    def projected(self, item: dict, table_keys: list[str]) -> dict:
        if self.projection == "ALL":
            return item
        names = set(self.keys) | set(table_keys) | (set(self.include) if self.projection == "INCLUDE" else set())
        return {k: v for k, v in item.items() if k in names}


@dataclass
class TableSizes:
    """The tables' items (and their indexes), as a recording is replayed over them: the state at
    the start of the window (a snapshot), or at the end of the run (a scan) for short
    recordings."""

    keys: dict[str, list[str]]
    indexes: dict[str, list[Index]] = field(default_factory=dict)
    items: dict[tuple, dict] = field(default_factory=dict)
    partitions: dict[tuple, set] = field(default_factory=dict)

    @classmethod
    def describe(cls, dynamodb, tables: list[str]) -> dict:
        out = {"keys": {}, "indexes": {}, "items": {}}
        for table in tables:
            t = dynamodb.describe_table(TableName=table)["Table"]
            out["keys"][table] = [k["AttributeName"] for k in sorted(t["KeySchema"], key=lambda k: k["KeyType"])]  # HASH, RANGE
            out["indexes"][table] = [
                {"name": g["IndexName"],
                 "keys": [k["AttributeName"] for k in sorted(g["KeySchema"], key=lambda k: k["KeyType"])],
                 "projection": g.get("Projection", {}).get("ProjectionType", "ALL"),
                 "include": g.get("Projection", {}).get("NonKeyAttributes", [])}
                for g in t.get("GlobalSecondaryIndexes", []) or []
            ]
            items = []
            for page in dynamodb.get_paginator("scan").paginate(TableName=table):
                items.extend(page.get("Items", []))
            out["items"][table] = items
        return out

    @classmethod
    def from_snapshot(cls, snap: dict) -> "TableSizes":
        sizes = cls(snap["keys"], {t: [Index(**g) for g in gs] for t, gs in snap["indexes"].items()})
        for table, items in snap["items"].items():
            for item in items:
                sizes.put(table, item)
        return sizes

    @classmethod
    def scan(cls, dynamodb, tables: list[str]) -> "TableSizes":
        return cls.from_snapshot(cls.describe(dynamodb, tables))

    def get(self, table: str, key: dict) -> dict | None:
        return self.items.get(key_of(self.keys, table, key))

    def put(self, table: str, item: dict | None, key: dict | None = None) -> None:
        k = key_of(self.keys, table, item if item is not None else key)
        pk = (table, k[1])
        if item is None:
            self.items.pop(k, None)
            self.partitions.get(pk, set()).discard(k)
        else:
            self.items[k] = item
            self.partitions.setdefault(pk, set()).add(k)

    def item(self, table: str, key: dict) -> float:
        found = self.get(table, key)
        return item_size(found) if found else 0

    def partition(self, table: str, pk_value: dict) -> float:
        keys = self.partitions.get((table, json.dumps(pk_value, sort_keys=True)), set())
        return sum(item_size(self.items[k]) for k in keys if k in self.items)

    def index_units(self, table: str, before: dict | None, after: dict | None) -> float:
        """Write units the table's indexes take for one item going from `before` to `after`
        (None: absent): a put where the item enters an index, a delete where it leaves, both
        where its index key changes, one write (the larger projection) where a projected
        attribute changes."""
        units = 0.0
        for g in self.indexes.get(table, []):
            was, now = g.holds(before), g.holds(after)
            if not was and not now:
                continue
            tk = self.keys.get(table, [])
            if was and not now:
                units += write_units(item_size(g.projected(before, tk)))
            elif now and not was:
                units += write_units(item_size(g.projected(after, tk)))
            elif any(before.get(k) != after.get(k) for k in g.keys):
                units += write_units(item_size(g.projected(before, tk))) + write_units(item_size(g.projected(after, tk)))
            elif g.projected(before, tk) != g.projected(after, tk):
                units += write_units(max(item_size(g.projected(before, tk)), item_size(g.projected(after, tk))))
        return units


# ------------------------------------------------------------------------------ updates


def _split_top(text: str, sep: str = ",") -> list[str]:
    out, depth, cur = [], 0, ""
    for ch in text:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == sep and depth == 0:
            out.append(cur.strip())
            cur = ""
        else:
            cur += ch
    if cur.strip():
        out.append(cur.strip())
    return out


_CLAUSE = re.compile(r"\b(SET|REMOVE|ADD|DELETE)\b", re.IGNORECASE)


class Unmodelled(Exception):
    """An update expression the replay does not evaluate (a nested path, an unknown function)."""


def _name(path: str, names: dict) -> str:
    path = path.strip()
    if "." in path or "[" in path:
        raise Unmodelled(path)
    return names.get(path, path)


def _number(v: dict) -> Decimal:
    return Decimal(v["N"])


def _operand(text: str, item: dict, names: dict, values: dict) -> dict | None:
    text = text.strip()
    if text.startswith(":"):
        return values.get(text)
    m = re.fullmatch(r"if_not_exists\s*\((.*)\)", text, re.DOTALL)
    if m:
        path, default = _split_top(m.group(1))
        current = item.get(_name(path, names))
        return current if current is not None else _operand(default, item, names, values)
    m = re.fullmatch(r"list_append\s*\((.*)\)", text, re.DOTALL)
    if m:
        a, b = (_operand(x, item, names, values) for x in _split_top(m.group(1)))
        return {"L": (a or {"L": []})["L"] + (b or {"L": []})["L"]}
    if "(" in text:
        raise Unmodelled(text)
    return item.get(_name(text, names))


def _value(text: str, item: dict, names: dict, values: dict) -> dict | None:
    # operand [+|- operand] (at the top level, outside function calls)
    depth = 0
    for i, ch in enumerate(text):
        depth += ch == "("
        depth -= ch == ")"
        if depth == 0 and ch in "+-" and i > 0:
            a = _operand(text[:i], item, names, values)
            b = _operand(text[i + 1:], item, names, values)
            if a is None or b is None:
                raise Unmodelled(text)
            result = _number(a) + _number(b) if ch == "+" else _number(a) - _number(b)
            return {"N": str(result)}
    return _operand(text, item, names, values)


def apply_update(before: dict | None, body: dict) -> dict:
    """The item after an UpdateItem (conditions not evaluated: see `replay`)."""
    item = dict(before) if before else dict(body.get("Key", {}))
    names = body.get("ExpressionAttributeNames", {}) or {}
    values = body.get("ExpressionAttributeValues", {}) or {}
    expr = body.get("UpdateExpression", "") or ""
    parts = _CLAUSE.split(expr)
    # parts: ["", "SET", "a = :x, ...", "REMOVE", "b", ...]
    for clause, actions in zip(parts[1::2], parts[2::2]):
        clause = clause.upper()
        for action in _split_top(actions):
            if clause == "SET":
                path, rhs = action.split("=", 1)
                v = _value(rhs, item, names, values)
                if v is None:
                    raise Unmodelled(action)
                item[_name(path, names)] = v
            elif clause == "REMOVE":
                item.pop(_name(action, names), None)
            elif clause == "ADD":
                path, operand = action.split(None, 1)
                name, v = _name(path, names), _operand(operand, item, names, values)
                current = item.get(name)
                if v is None:
                    raise Unmodelled(action)
                if "N" in v:
                    item[name] = {"N": str((_number(current) if current else 0) + _number(v))}
                else:
                    (kind, members), = v.items()
                    item[name] = {kind: sorted(set((current or {}).get(kind, [])) | set(members))}
            elif clause == "DELETE":
                path, operand = action.split(None, 1)
                name, v = _name(path, names), _operand(operand, item, names, values)
                current = item.get(name)
                if current and v:
                    (kind, members), = v.items()
                    left = sorted(set(current.get(kind, [])) - set(members))
                    if left:
                        item[name] = {kind: left}
                    else:
                        item.pop(name, None)
    return item


def _fails_not_exists(body: dict, before: dict | None) -> bool:
    """A write conditioned on `attribute_not_exists(...)` alone, on an item that exists: it fails
    (and is billed on the existing item's size). Other conditions are taken to hold."""
    cond = (body.get("ConditionExpression") or "").strip()
    return before is not None and bool(re.fullmatch(r"attribute_not_exists\s*\([^)]*\)", cond))


# ------------------------------------------------------------------------------ requests


@dataclass
class Request:
    origin: str  # function | esm | bench | other
    service: str
    operation: str
    body: dict
    raw_size: int
    copies: int = 0  # copies of the event's padded payload in the request (write requests only)


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


PAD = re.compile(r"\[pad(y*)\]")


def grow_payload(text: str, grow: int) -> str:
    """`text` with every copy of the bench's padded payload `grow` bytes longer."""
    if not grow:
        return text
    return PAD.sub(lambda m: "[pad" + "y" * (len(m.group(1)) + grow) + "]", text)


WRITES = {"SendMessage", "SendMessageBatch", "PutItem", "UpdateItem", "BatchWriteItem", "TransactWriteItems", "Publish"}


def parse_recording(text: str, grow: int = 0) -> list[Request]:
    """The recorded requests, each copy of the padded payload grown by `grow` bytes."""
    out = []
    for entry in entries(text):
        headers = entry.get("headers") or {}
        raw = entry.get("body") or ""
        data = base64.b64decode(raw) if entry.get("body_encoded") else raw.encode("utf-8")
        if grow and header(headers, "X-Amz-Target"):
            data = grow_payload(data.decode("utf-8", "replace"), grow).encode("utf-8")
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
            body = {k: grow_payload(v[0], grow) for k, v in form.items()}
        copies = len(PAD.findall(json.dumps(body))) if operation in WRITES else 0
        out.append(Request(origin, service, operation, body, len(data), copies))
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


def _write(sizes: TableSizes, table: str, body: dict, after: dict | None, key: dict | None, transactional: bool, t: "Tally") -> float:
    """Replays one item write; returns its table write units (index units go to `t`)."""
    before = sizes.get(table, after if after is not None else key)
    if after is not None and _fails_not_exists(body, before):
        t.failed_conditions += 1
        return write_units(item_size(before), transactional)
    billed = max(item_size(before) if before else 0, item_size(after) if after else 0)
    t.index_wru += sizes.index_units(table, before, after)
    sizes.put(table, after, key)
    return write_units(billed, transactional)


def _updated(sizes: TableSizes, table: str, body: dict, t: "Tally") -> dict:
    before = sizes.get(table, body.get("Key", {}))
    if _fails_not_exists(body, before):
        return before
    try:
        return apply_update(before, body)
    except (Unmodelled, KeyError, ValueError, ArithmeticError):
        t.unmodelled_updates += 1
        return before if before else dict(body.get("Key", {}))


def dynamodb_units(r: Request, sizes: TableSizes, t: "Tally") -> tuple[float, float]:
    """(read units, table write units) of one DynamoDB request, replayed over `sizes`: reads
    at the size of the items as they stand, writes at the larger of the item before and after
    (a failed `attribute_not_exists` condition at the existing item's). Index writes are
    added to `t.index_wru`."""
    b = r.body
    op = r.operation
    consistent = bool(b.get("ConsistentRead"))
    table = b.get("TableName", "")
    if op == "PutItem":
        return 0, _write(sizes, table, b, b.get("Item", {}), None, False, t)
    if op == "UpdateItem":
        before = sizes.get(table, b.get("Key", {}))
        after = _updated(sizes, table, b, t)
        if after is before:  # a failed condition
            t.failed_conditions += before is not None
            return 0, write_units(item_size(before) if before else 0)
        billed = max(item_size(before) if before else 0, item_size(after))
        t.index_wru += sizes.index_units(table, before, after)
        sizes.put(table, after)
        return 0, write_units(billed)
    if op == "DeleteItem":
        return 0, _write(sizes, table, b, None, b.get("Key", {}), False, t)
    if op == "GetItem":
        return read_units(sizes.item(table, b.get("Key", {})), consistent), 0
    if op == "BatchGetItem":
        rru = 0.0
        for tbl, request in b.get("RequestItems", {}).items():
            c = bool(request.get("ConsistentRead"))
            rru += sum(read_units(sizes.item(tbl, k), c) for k in request.get("Keys", []))
        return rru, 0
    if op == "Query":
        if b.get("IndexName"):
            t.index_queries += 1
            return read_units(0, False), 0
        values = b.get("ExpressionAttributeValues", {})
        pk = values.get(":pk")
        return read_units(sizes.partition(table, pk) if pk else 0, consistent), 0
    if op == "BatchWriteItem":
        wru = 0.0
        for tbl, writes in b.get("RequestItems", {}).items():
            for w in writes:
                if "PutRequest" in w:
                    wru += _write(sizes, tbl, {}, w["PutRequest"].get("Item", {}), None, False, t)
                else:
                    wru += _write(sizes, tbl, {}, None, w.get("DeleteRequest", {}).get("Key", {}), False, t)
        return 0, wru
    if op == "TransactWriteItems":
        wru = 0.0
        for action in b.get("TransactItems", []):
            ((kind, spec),) = action.items()
            tbl = spec.get("TableName", "")
            if kind == "Put":
                wru += _write(sizes, tbl, spec, spec.get("Item", {}), None, True, t)
            elif kind == "Delete":
                wru += _write(sizes, tbl, spec, None, spec.get("Key", {}), True, t)
            elif kind == "Update":
                before = sizes.get(tbl, spec.get("Key", {}))
                after = _updated(sizes, tbl, spec, t)
                t.index_wru += sizes.index_units(tbl, before, after) if after is not before else 0
                wru += write_units(max(item_size(before) if before else 0, item_size(after) if after else 0), True)
                if after is not None:
                    sizes.put(tbl, after)
            else:  # ConditionCheck
                wru += write_units(sizes.item(tbl, spec.get("Key", {})), True)
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
    table_wru: float = 0
    index_wru: float = 0
    kms: int = 0
    sns: int = 0
    success_logs: int = 0
    success_log_wru: float = 0  # table and index writes of the success entries
    failed_conditions: int = 0
    unmodelled_updates: int = 0
    index_queries: int = 0
    payload_copies: Counter = field(default_factory=Counter)  # "service:Operation" -> copies written

    @property
    def wru(self) -> float:
        return self.table_wru + self.index_wru

    def as_dict(self) -> dict:
        return {
            "requests": dict(sorted(self.requests.items())),
            "sqs_units": self.sqs_units,
            "dynamodb_rru": self.rru,
            "dynamodb_wru": self.wru,
            "dynamodb_table_wru": self.table_wru,
            "dynamodb_index_wru": self.index_wru,
            "kms_requests": self.kms,
            "sns_requests": self.sns,
            "success_log_puts": self.success_logs,
            "success_log_wru": self.success_log_wru,
            "failed_conditions": self.failed_conditions,
            "unmodelled_updates": self.unmodelled_updates,
            "index_queries_at_minimum": self.index_queries,
            "payload_copies_written": dict(sorted(self.payload_copies.items())),
        }


def tally(requests: list[Request], sizes: TableSizes, deliveries_table: str, origins=("function", "esm", "bench")) -> Tally:
    """Prices `requests` in their recorded order, replaying their writes over `sizes` (changed)."""
    t = Tally()
    for r in requests:
        if r.origin not in origins:
            continue
        if r.origin == "bench" and not (r.service == "sqs" and r.operation == "SendMessage"):
            continue  # the bench's own set-up and checks are not the pipeline's
        t.requests[f"{r.origin}/{r.service}:{r.operation}"] += 1
        if r.copies:
            t.payload_copies[f"{r.service}:{r.operation}"] += r.copies
        if r.service == "sqs":
            t.sqs_units += sqs_units(r)
        elif r.service == "dynamodb":
            index_before = t.index_wru
            rru, wru = dynamodb_units(r, sizes, t)
            t.rru += rru
            t.table_wru += wru
            if is_success_log(r, deliveries_table):
                t.success_logs += 1
                t.success_log_wru += wru + (t.index_wru - index_before)
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


def main(argv: list[str]) -> int:
    if len(argv) == 4 and argv[1] == "snapshot":
        import boto3

        info = json.loads(open(argv[2]).read())
        dynamodb = boto3.client("dynamodb", endpoint_url=info["emulator_url"], region_name=info["region"],
                                aws_access_key_id="test", aws_secret_access_key="test")
        snap = TableSizes.describe(dynamodb, list(info["tables"].values()))
        with open(argv[3], "w") as f:
            json.dump(snap, f)
        return 0
    print("usage: aws_usage.py snapshot stack.json out.json")
    return 2


if __name__ == "__main__":
    import sys

    sys.exit(main(sys.argv))
