"""What AWS refuses and the emulator accepts: the checks the proxy makes before forwarding.

moto stores items DynamoDB refuses (over 400 KB, nested deeper than 32 levels, numbers with
more than 38 significant digits), queues SQS bodies holding characters SQS refuses, counts
the 12 h visibility cap from the message's send rather than its receipt, and runs
transactions that DynamoDB would cancel for a conflict. A fake kinder than AWS hides the
defects that matter most, so the proxy in front of the emulator refuses these requests with
AWS's own answers. Everything here is a pure function of the request (or a small registry
the proxy keeps), standard library only, and is only called for the operations it concerns.

Error shapes are AWS's JSON protocol ones: `__type` and `message`, `x-amzn-query-error` for
SQS (its JSON protocol is query compatible), per-entry `Failed` results in SQS batches,
`CancellationReasons` in `TransactionCanceledException`.
"""

from __future__ import annotations

import base64
import contextlib
import json
import math
import re
import threading
import time
from decimal import Decimal, InvalidOperation

# DynamoDB's limits (https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/ServiceQuotas.html).
MAX_ITEM_BYTES = 400 * 1024
MAX_NESTING = 32
MAX_NUMBER_DIGITS = 38
MAX_NUMBER_EXPONENT = 125  # 9.9999999999999999999999999999999999999E+125
MIN_NUMBER_EXPONENT = -130  # 1E-130
# SQS: a message may stay invisible at most this long after it was received.
MAX_VISIBILITY_SECONDS = 43200

DYNAMODB_PREFIX = "com.amazonaws.dynamodb.v20120810#"
VALIDATION = "com.amazon.coral.validate#ValidationException"
ITEM_TOO_LARGE = "Item size has exceeded the maximum allowed size"
UPDATE_TOO_LARGE = "Item size to update has exceeded the maximum allowed size"
TOO_DEEP = "Nesting Levels have exceeded supported limits"
NUMBER_OVERFLOW = "Number overflow. Attempting to store a number with magnitude larger than supported range"
NUMBER_UNDERFLOW = "Number underflow. Attempting to store a number with magnitude smaller than supported range"
NUMBER_DIGITS = "Attempting to store more than 38 significant digits in a Number"
NOT_A_NUMBER = "A value provided cannot be converted into a number"
CONFLICT_REASON = "Transaction is ongoing for the item"

_NUMBER = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?\Z")
# Characters SQS accepts in a body (https://www.w3.org/TR/REC-xml/#charsets); lone surrogates
# (JSON's \ud800) fall outside too.
_REFUSED_CHARACTER = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


class Refusal(Exception):
    """A request AWS refuses: `code` (the `__type` without namespace) and AWS's message."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


# ---------------------------------------------------------------------------- DynamoDB values


def _number_size(text: str) -> int:
    """Validates a DynamoDB number; returns its stored size (1 byte per two significant digits,
    plus one)."""
    if not isinstance(text, str) or not _NUMBER.match(text):
        raise Refusal("ValidationException", NOT_A_NUMBER)
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise Refusal("ValidationException", NOT_A_NUMBER) from None
    if value == 0:
        return 2
    significant = len("".join(map(str, value.as_tuple().digits)).strip("0"))
    if significant > MAX_NUMBER_DIGITS:
        raise Refusal("ValidationException", NUMBER_DIGITS)
    exponent = value.adjusted()
    if exponent > MAX_NUMBER_EXPONENT:
        raise Refusal("ValidationException", NUMBER_OVERFLOW)
    if exponent < MIN_NUMBER_EXPONENT:
        raise Refusal("ValidationException", NUMBER_UNDERFLOW)
    return (significant + 1) // 2 + 1


def _binary_size(text) -> int:
    try:
        return len(base64.b64decode(text, validate=False))
    except (ValueError, TypeError):
        return len(text) * 3 // 4 if isinstance(text, str) else 0


def value_size(value, depth: int = 0) -> int:
    """The size DynamoDB counts for one attribute value (names of nested map entries included);
    raises Refusal for a malformed number or nesting deeper than 32 levels."""
    if not isinstance(value, dict) or len(value) != 1:
        return 0  # malformed: the emulator answers that itself
    (kind, inner), = value.items()
    if kind == "S":
        return len(inner.encode("utf-8", "surrogatepass")) if isinstance(inner, str) else 0
    if kind == "N":
        return _number_size(inner)
    if kind == "B":
        return _binary_size(inner)
    if kind in ("BOOL", "NULL"):
        return 1
    if kind == "SS":
        return sum(len(s.encode("utf-8", "surrogatepass")) for s in inner if isinstance(s, str))
    if kind == "NS":
        return sum(_number_size(n) for n in inner)
    if kind == "BS":
        return sum(_binary_size(b) for b in inner)
    if kind in ("M", "L"):
        if depth + 1 > MAX_NESTING:
            raise Refusal("ValidationException", TOO_DEEP)
        # A document costs 3 bytes, plus 1 per element.
        if kind == "M" and isinstance(inner, dict):
            return 3 + sum(len(k.encode("utf-8", "surrogatepass")) + 1 + value_size(v, depth + 1) for k, v in inner.items())
        if kind == "L" and isinstance(inner, list):
            return 3 + sum(1 + value_size(v, depth + 1) for v in inner)
    return 0


def attributes_size(attributes) -> int:
    """The size of an item (or of any name -> value map): names plus values."""
    if not isinstance(attributes, dict):
        return 0
    return sum(len(name.encode("utf-8", "surrogatepass")) + value_size(value) for name, value in attributes.items())


def _check_item(item) -> None:
    if attributes_size(item) > MAX_ITEM_BYTES:
        raise Refusal("ValidationException", ITEM_TOO_LARGE)


def _check_values(values) -> int:
    """Validates ExpressionAttributeValues (numbers, nesting); returns their size."""
    if not isinstance(values, dict):
        return 0
    return sum(value_size(v) for v in values.values())


def _check_update(request: dict) -> None:
    # The stored item is not known here; what the request itself carries (key and values,
    # legacy AttributeUpdates too) already over the limit can never fit.
    size = attributes_size(request.get("Key")) + _check_values(request.get("ExpressionAttributeValues"))
    updates = request.get("AttributeUpdates")
    if isinstance(updates, dict):
        size += sum(len(n.encode()) + value_size((u or {}).get("Value")) for n, u in updates.items() if isinstance(u, dict))
    if size > MAX_ITEM_BYTES:
        raise Refusal("ValidationException", UPDATE_TOO_LARGE)


def check_dynamodb(operation: str, request: dict) -> None:
    """Raises Refusal for a write DynamoDB refuses as a whole (ValidationException)."""
    if operation == "PutItem":
        _check_values(request.get("ExpressionAttributeValues"))
        _check_item(request.get("Item"))
    elif operation == "UpdateItem":
        _check_update(request)
    elif operation == "TransactWriteItems":
        for entry in request.get("TransactItems") or []:
            if not isinstance(entry, dict):
                continue
            for kind, action in entry.items():
                if not isinstance(action, dict):
                    continue
                _check_values(action.get("ExpressionAttributeValues"))
                if kind == "Put":
                    _check_item(action.get("Item"))
                elif kind == "Update":
                    _check_update(action)
    elif operation == "BatchWriteItem":
        for requests in (request.get("RequestItems") or {}).values():
            for entry in requests or []:
                if isinstance(entry, dict) and isinstance(entry.get("PutRequest"), dict):
                    _check_item(entry["PutRequest"].get("Item"))


# ------------------------------------------------------------------ DynamoDB transaction conflicts


def _key_of(attributes, key_names: tuple[str, ...]) -> str | None:
    if not isinstance(attributes, dict) or not key_names:
        return None
    try:
        return json.dumps([attributes[name] for name in key_names], sort_keys=True, separators=(",", ":"))
    except KeyError:
        return None


def transaction_items(request: dict, key_schema) -> list[tuple[str, str] | None]:
    """The (table, key) of each item a TransactWriteItems touches (None where unknown);
    `key_schema(table)` gives a table's key attribute names."""
    items: list[tuple[str, str] | None] = []
    for entry in request.get("TransactItems") or []:
        found = None
        if isinstance(entry, dict):
            for kind, action in entry.items():
                if not isinstance(action, dict) or not isinstance(action.get("TableName"), str):
                    continue
                table = action["TableName"]
                if kind == "Put":
                    key = _key_of(action.get("Item"), key_schema(table))
                else:  # a Key holds the key attributes only
                    key = _key_of(action.get("Key"), tuple(sorted(action.get("Key") or {})))
                found = (table, key) if key is not None else None
        items.append(found)
    return items


def single_write_item(operation: str, request: dict, key_schema) -> tuple[str, str] | None:
    """The (table, key) a PutItem, UpdateItem or DeleteItem writes (None where unknown)."""
    table = request.get("TableName")
    if not isinstance(table, str):
        return None
    if operation == "PutItem":
        key = _key_of(request.get("Item"), key_schema(table))
    else:  # a Key holds the key attributes only
        key = _key_of(request.get("Key"), tuple(sorted(request.get("Key") or {})))
    return (table, key) if key is not None else None


def cancellation(reasons: list[str | None]) -> dict:
    """The body of a TransactionCanceledException with one reason per item (None: no reason)."""
    codes = [code or "None" for code in reasons]
    return {
        "__type": DYNAMODB_PREFIX + "TransactionCanceledException",
        "CancellationReasons": [{"Code": c, "Message": CONFLICT_REASON} if c == "TransactionConflict" else {"Code": c} for c in codes],
        "Message": f"Transaction cancelled, please refer cancellation reasons for specific reasons [{', '.join(codes)}]",
    }


class ItemsInFlight:
    """The items written by requests queued or under way: a transaction touching one of them
    is cancelled (`TransactionConflict`), as is a single write to an item a transaction holds
    (`TransactionConflictException`), as DynamoDB does while either is in progress."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.transactions: dict[tuple[str, str], int] = {}
        self.writes: dict[tuple[str, str], int] = {}
        self.item_locks: dict[tuple[str, str], list] = {}
        self.conflicts = 0

    def begin_transaction(self, items: list[tuple[str, str] | None]) -> list[str | None] | None:
        """Registers a transaction's items; or, when one is taken, the cancellation reasons."""
        with self.lock:
            taken = [i is not None and (i in self.transactions or i in self.writes) for i in items]
            if any(taken):
                self.conflicts += 1
                return ["TransactionConflict" if t else None for t in taken]
            for item in items:
                if item is not None:
                    self.transactions[item] = self.transactions.get(item, 0) + 1
            return None

    def end_transaction(self, items: list[tuple[str, str] | None]) -> None:
        with self.lock:
            _release(self.transactions, items)

    def begin_write(self, item: tuple[str, str] | None) -> bool:
        """Registers a single write; False when a transaction holds its item."""
        if item is None:
            return True
        with self.lock:
            if item in self.transactions:
                self.conflicts += 1
                return False
            self.writes[item] = self.writes.get(item, 0) + 1
            return True

    def end_write(self, item: tuple[str, str] | None) -> None:
        if item is not None:
            with self.lock:
                _release(self.writes, [item])

    @contextlib.contextmanager
    def one_at_a_time(self, item: tuple[str, str] | None):
        """Holds `item` while a single write to it runs: DynamoDB applies a write's condition and
        its change atomically, the emulator checks and writes without a lock, so two conditional
        writes at once could both pass."""
        if item is None:
            yield
            return
        with self.lock:
            entry = self.item_locks.setdefault(item, [threading.Lock(), 0])
            entry[1] += 1
        entry[0].acquire()
        try:
            yield
        finally:
            entry[0].release()
            with self.lock:
                entry[1] -= 1
                if entry[1] == 0:
                    self.item_locks.pop(item, None)


def _release(counts: dict, items) -> None:
    for item in items:
        if item is None:
            continue
        left = counts.get(item, 0) - 1
        if left > 0:
            counts[item] = left
        else:
            counts.pop(item, None)


# ------------------------------------------------------------------------------------- SQS


def refused_character(body) -> str | None:
    """AWS's message for a body holding a character SQS refuses (None when the body is fine)."""
    if not isinstance(body, str):
        return None
    found = _REFUSED_CHARACTER.search(body)
    if found is None:
        return None
    return (
        f"Invalid binary character '#x{ord(found.group()):X}' was found in the message body, the set of allowed "
        "characters is #x9 | #xA | #xD | #x20 to #xD7FF | #xE000 to #xFFFD | #x10000 to #x10FFFF"
    )


def visibility_refusal(timeout, received_at: float | None, now: float) -> str | None:
    """AWS's message when a ChangeMessageVisibility would keep a message invisible for more
    than 12 h counted from its receipt (None when allowed or the receipt is unknown)."""
    if received_at is None:
        return None
    try:
        seconds = int(timeout)
    except (TypeError, ValueError):
        return None
    if (now - received_at) + seconds <= MAX_VISIBILITY_SECONDS:
        return None
    return (
        f"Value {seconds} for parameter VisibilityTimeout is invalid. Reason: Total VisibilityTimeout for the "
        f"message is beyond the limit [{MAX_VISIBILITY_SECONDS} seconds]."
    )


class Receipts:
    """When each receipt handle handed out by ReceiveMessage was received (the 12 h visibility
    cap counts from there). Entries older than the cap can no longer matter and are dropped."""

    PRUNE_EVERY = 1000

    def __init__(self, clock=time.monotonic) -> None:
        self.clock = clock
        self.lock = threading.Lock()
        self.received: dict[str, float] = {}
        # The emulator counts the cap from the message's send instead (moto 5.2.5), and so
        # refuses what SQS allows: handle -> (SentTimestamp in ms, wall clock at receipt).
        self.sent: dict[str, tuple[int, float]] = {}
        self.added = 0

    def remember(self, handles: list[str], sent_ms: list[int | None] | None = None) -> None:
        now = self.clock()
        with self.lock:
            for i, handle in enumerate(handles):
                self.received[handle] = now
                if sent_ms and sent_ms[i] is not None:
                    self.sent[handle] = (sent_ms[i], time.time())
            self.added += len(handles)
            if self.added >= self.PRUNE_EVERY:
                self.added = 0
                old = [h for h, at in self.received.items() if now - at > MAX_VISIBILITY_SECONDS]
                for handle in old:
                    del self.received[handle]
                    self.sent.pop(handle, None)

    def received_at(self, handle) -> float | None:
        with self.lock:
            return self.received.get(handle) if isinstance(handle, str) else None

    def forget(self, handles: list[str]) -> None:
        with self.lock:
            for handle in handles:
                self.received.pop(handle, None)
                self.sent.pop(handle, None)

    def emulator_cap(self, handle, timeout) -> int | None:
        """The longest timeout the emulator accepts for this receipt, when below `timeout`
        (None: no need to lower it). The proxy lowers an allowed timeout to it: seconds apart
        at a 12 h horizon, where SQS would refuse nothing."""
        with self.lock:
            sent = self.sent.get(handle) if isinstance(handle, str) else None
        if sent is None:
            return None
        try:
            seconds = int(timeout)
        except (TypeError, ValueError):
            return None
        cap = MAX_VISIBILITY_SECONDS - math.ceil(time.time() - sent[0] / 1000.0) - 1
        return max(0, cap) if seconds > cap else None
