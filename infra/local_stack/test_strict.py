"""The proxy refuses what AWS refuses, with AWS's answers, whatever the emulator would accept.

Each test sends through a proxy (no faults) in front of a real emulator and checks what the
caller sees: HTTP status, error code and message, per-entry failures in SQS batches,
cancellation reasons of a cancelled transaction.
"""

from __future__ import annotations

import concurrent.futures
import threading
import time

import boto3
import pytest
from botocore.config import Config as BotoConfig
from botocore.exceptions import ClientError

from . import strict
from .fault_proxy import FaultProxy, FaultSettings


@pytest.fixture(scope="module")
def proxy(emulator_url):
    server = FaultProxy(emulator_url, FaultSettings(rate=0.0))
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def _client(url: str, service: str):
    return boto3.session.Session().client(
        service, endpoint_url=url, region_name="us-east-1", aws_access_key_id="test", aws_secret_access_key="test",
        config=BotoConfig(retries={"max_attempts": 1, "mode": "standard"}, max_pool_connections=50),
    )


@pytest.fixture(scope="module")
def dynamodb(proxy):
    return _client(proxy.url, "dynamodb")


@pytest.fixture(scope="module")
def sqs(proxy):
    return _client(proxy.url, "sqs")


@pytest.fixture(scope="module")
def table(dynamodb):
    name = f"strict-{time.time_ns()}"
    dynamodb.create_table(
        TableName=name, BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}, {"AttributeName": "sk", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
    )
    return name


@pytest.fixture()
def queue(sqs):
    return sqs.create_queue(QueueName=f"strict-{time.time_ns()}")["QueueUrl"]


def _refusal(call) -> ClientError:
    with pytest.raises(ClientError) as caught:
        call()
    return caught.value


def _nested(depth: int) -> dict:
    value: dict = {"S": "leaf"}
    for _ in range(depth):
        value = {"M": {"d": value}}
    return value


def _item(**attributes) -> dict:
    return {"pk": {"S": "p"}, "sk": {"S": str(time.time_ns())}, **attributes}


# ------------------------------------------------------------------------------ DynamoDB


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ({"N": "1e200"}, strict.NUMBER_OVERFLOW),
        ({"N": "1E+126"}, strict.NUMBER_OVERFLOW),
        ({"N": "1e-131"}, strict.NUMBER_UNDERFLOW),
        ({"N": "1" * 39}, strict.NUMBER_DIGITS),
        ({"NS": ["1", "0." + "1" * 39]}, strict.NUMBER_DIGITS),
        ({"M": {"deep": {"L": [{"N": "-1e127"}]}}}, strict.NUMBER_OVERFLOW),
        (_nested(33), strict.TOO_DEEP),
        ({"S": "x" * (400 * 1024)}, strict.ITEM_TOO_LARGE),
    ],
)
def test_put_item_refused_as_dynamodb_does(dynamodb, table, value, message):
    error = _refusal(lambda: dynamodb.put_item(TableName=table, Item=_item(v=value)))
    assert error.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert error.response["Error"]["Code"] == "ValidationException"
    assert error.response["Error"]["Message"] == message


@pytest.mark.parametrize(
    "value",
    [{"N": "9.9999999999999999999999999999999999999E+125"}, {"N": "-1E-130"}, {"N": "0"}, {"N": "1" * 38}, _nested(32)],
)
def test_what_dynamodb_accepts_goes_through(dynamodb, table, value):
    dynamodb.put_item(TableName=table, Item=_item(v=value))


def test_the_item_size_counts_names_and_values(dynamodb, table):
    # GIVEN an item of exactly 400 KB: key "pk"+"p", "sk"+19 digits, then one string attribute
    key_size = len("pk") + 1 + len("sk") + 19
    name = "n" * 100
    fits = _item(**{name: {"S": "x" * (400 * 1024 - key_size - len(name))}})
    assert strict.attributes_size(fits) == 400 * 1024
    strict.check_dynamodb("PutItem", {"Item": fits})
    # WHEN its attribute name is one byte longer THEN it no longer fits
    too_large = _item(**{name + "n": {"S": "x" * (400 * 1024 - key_size - len(name))}})
    error = _refusal(lambda: dynamodb.put_item(TableName=table, Item=too_large))
    assert error.response["Error"]["Message"] == strict.ITEM_TOO_LARGE
    # AND the emulator stores an item below its own limit (405,000 bytes, a little under AWS's)
    dynamodb.put_item(TableName=table, Item=_item(**{name: {"S": "x" * 404_000}}))


def test_sizes_of_each_type():
    assert strict.value_size({"N": "12345"}) == 4  # 5 significant digits: 3 bytes, plus 1
    assert strict.value_size({"N": "1000"}) == 2  # trailing zeros do not count
    assert strict.value_size({"B": "AAECAw=="}) == 4  # the bytes, not their base64
    assert strict.value_size({"BOOL": True}) == strict.value_size({"NULL": True}) == 1
    assert strict.value_size({"SS": ["ab", "é"]}) == 4
    assert strict.value_size({"M": {"ab": {"S": "xyz"}}}) == 3 + 2 + 1 + 3
    assert strict.value_size({"L": [{"S": "a"}, {"S": "b"}]}) == 3 + 2 * (1 + 1)


def test_update_item_values_refused(dynamodb, table):
    key = {"pk": {"S": "p"}, "sk": {"S": "update"}}
    for values, message in [
        ({":v": {"N": "1e200"}}, strict.NUMBER_OVERFLOW),
        ({":v": _nested(33)}, strict.TOO_DEEP),
        ({":v": {"B": b"x" * (400 * 1024 + 1)}}, strict.UPDATE_TOO_LARGE),
    ]:
        error = _refusal(
            lambda: dynamodb.update_item(TableName=table, Key=key, UpdateExpression="SET v = :v", ExpressionAttributeValues=values)
        )
        assert error.response["Error"]["Code"] == "ValidationException"
        assert error.response["Error"]["Message"] == message


def test_transact_write_items_and_batch_write_item_refused(dynamodb, table):
    error = _refusal(
        lambda: dynamodb.transact_write_items(
            TransactItems=[
                {"Put": {"TableName": table, "Item": _item()}},
                {"Put": {"TableName": table, "Item": _item(v=_nested(40))}},
            ]
        )
    )
    assert (error.response["Error"]["Code"], error.response["Error"]["Message"]) == ("ValidationException", strict.TOO_DEEP)
    error = _refusal(
        lambda: dynamodb.transact_write_items(
            TransactItems=[
                {
                    "Update": {
                        "TableName": table, "Key": {"pk": {"S": "p"}, "sk": {"S": "t"}}, "UpdateExpression": "SET v = :v",
                        "ExpressionAttributeValues": {":v": {"N": "1e200"}},
                    }
                }
            ]
        )
    )
    assert error.response["Error"]["Message"] == strict.NUMBER_OVERFLOW
    error = _refusal(
        lambda: dynamodb.batch_write_item(
            RequestItems={table: [{"PutRequest": {"Item": _item()}}, {"PutRequest": {"Item": _item(v={"S": "x" * 410_000})}}]}
        )
    )
    assert (error.response["Error"]["Code"], error.response["Error"]["Message"]) == ("ValidationException", strict.ITEM_TOO_LARGE)


def test_overlapping_transactions_on_one_item_are_cancelled_for_a_conflict(dynamodb, table):
    # GIVEN many transactions at once, each on the same item and one item of its own
    shared = {"pk": {"S": "p"}, "sk": {"S": f"shared-{time.time_ns()}"}}

    def transaction(n: int):
        own = {"pk": {"S": "p"}, "sk": {"S": f"own-{n}-{time.time_ns()}"}}
        try:
            dynamodb.transact_write_items(
                TransactItems=[
                    {"Put": {"TableName": table, "Item": own}},
                    {"Update": {"TableName": table, "Key": shared, "UpdateExpression": "ADD n :one", "ExpressionAttributeValues": {":one": {"N": "1"}}}},
                ]
            )
            return None
        except ClientError as e:
            return e.response

    # WHEN they overlap
    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        answers = list(pool.map(transaction, range(48)))

    # THEN those that met another under way were cancelled, with the shared item's reason
    cancelled = [a for a in answers if a is not None]
    assert cancelled, "no transaction met another one on the shared item"
    for answer in cancelled:
        assert answer["ResponseMetadata"]["HTTPStatusCode"] == 400
        assert answer["Error"]["Code"] == "TransactionCanceledException"
        assert [r["Code"] for r in answer["CancellationReasons"]] == ["None", "TransactionConflict"]
        assert answer["Error"]["Message"] == "Transaction cancelled, please refer cancellation reasons for specific reasons [None, TransactionConflict]"
    # AND the others took effect, each once
    done = len(answers) - len(cancelled)
    assert done >= 1
    stored = dynamodb.get_item(TableName=table, Key=shared, ConsistentRead=True)["Item"]["n"]["N"]
    assert int(stored) == done


def test_concurrent_conditional_writes_to_one_item_take_effect_one_at_a_time(dynamodb, table):
    # GIVEN many requests at once, each claiming the same item if nobody has (DynamoDB applies
    # single-item writes atomically; the emulator checks and writes without a lock)
    key = {"pk": {"S": "p"}, "sk": {"S": f"claimed-{time.time_ns()}"}}

    def claim(n: int) -> bool:
        try:
            dynamodb.update_item(
                TableName=table, Key=key, UpdateExpression="SET owner_id = :me",
                ConditionExpression="attribute_not_exists(owner_id)", ExpressionAttributeValues={":me": {"N": str(n)}},
            )
            return True
        except ClientError as e:
            assert e.response["Error"]["Code"] == "ConditionalCheckFailedException", e.response
            return False

    # WHEN they overlap, round after round on fresh items
    winners = []
    for round_ in range(10):
        key["sk"]["S"] = f"claimed-{round_}-{time.time_ns()}"
        with concurrent.futures.ThreadPoolExecutor(16) as pool:
            winners.append(sum(pool.map(claim, range(32))))

    # THEN exactly one claim wins each round
    assert winners == [1] * 10


def test_transactions_on_different_items_do_not_conflict(dynamodb, table):
    def transaction(n: int):
        key = {"pk": {"S": "p"}, "sk": {"S": f"apart-{n}-{time.time_ns()}"}}
        dynamodb.transact_write_items(TransactItems=[{"Put": {"TableName": table, "Item": key}}])

    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        list(pool.map(transaction, range(48)))


def test_a_write_to_an_item_a_transaction_holds_is_refused(proxy, dynamodb, table):
    # GIVEN a transaction under way on an item (registered as the proxy does while it runs)
    key = {"pk": {"S": "p"}, "sk": {"S": f"held-{time.time_ns()}"}}
    held = strict.transaction_items({"TransactItems": [{"Update": {"TableName": table, "Key": key}}]}, lambda t: ())
    assert proxy.items_in_flight.begin_transaction(held) is None
    try:
        # WHEN a PutItem writes that item THEN DynamoDB's conflict answers
        error = _refusal(lambda: dynamodb.put_item(TableName=table, Item={**key, "v": {"S": "x"}}))
        assert error.response["Error"]["Code"] == "TransactionConflictException"
        # AND a transaction touching it is cancelled
        error = _refusal(lambda: dynamodb.transact_write_items(TransactItems=[{"Put": {"TableName": table, "Item": {**key, "v": {"S": "y"}}}}]))
        assert [r["Code"] for r in error.response["CancellationReasons"]] == ["TransactionConflict"]
    finally:
        proxy.items_in_flight.end_transaction(held)
    # AND once it is over, the write goes through
    dynamodb.put_item(TableName=table, Item={**key, "v": {"S": "z"}})


# ----------------------------------------------------------------------------------- SQS


@pytest.mark.parametrize("character", ["\u0001", "\u0000", "\u001f", "\ufffe", "\uffff", "\u0008"])
def test_send_message_with_a_character_sqs_refuses(sqs, queue, character):
    error = _refusal(lambda: sqs.send_message(QueueUrl=queue, MessageBody=f"before{character}after"))
    assert error.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert error.response["Error"]["Code"] == "InvalidMessageContents"
    assert f"'#x{ord(character):X}'" in error.response["Error"]["Message"]


def test_characters_sqs_accepts_go_through(sqs, queue):
    body = "tab\t nl\n cr\r \ud7ff \ue000 \ufffd \U00010000 \U0010ffff é 😀"
    sqs.send_message(QueueUrl=queue, MessageBody=body)
    assert sqs.receive_message(QueueUrl=queue)["Messages"][0]["Body"] == body


def test_send_message_batch_fails_only_the_refused_entries(sqs, queue):
    answer = sqs.send_message_batch(
        QueueUrl=queue,
        Entries=[{"Id": "good", "MessageBody": "fine"}, {"Id": "bad", "MessageBody": "not \uffff fine"}, {"Id": "good2", "MessageBody": "fine too"}],
    )
    assert sorted(s["Id"] for s in answer["Successful"]) == ["good", "good2"]
    assert [(f["Id"], f["Code"], f["SenderFault"]) for f in answer["Failed"]] == [("bad", "InvalidMessageContents", True)]
    bodies = []
    for _ in range(3):
        bodies += [m["Body"] for m in sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10).get("Messages", [])]
    assert sorted(bodies) == ["fine", "fine too"]
    # AND a batch with nothing left to send is answered without sending
    answer = sqs.send_message_batch(QueueUrl=queue, Entries=[{"Id": "only", "MessageBody": "\u0002"}])
    assert answer["Successful"] == [] and [f["Id"] for f in answer["Failed"]] == ["only"]


def test_visibility_over_12_hours_from_receipt_is_refused(proxy, sqs, queue):
    # GIVEN a message received (through the proxy) an hour ago
    sqs.send_message(QueueUrl=queue, MessageBody="m")
    handle = sqs.receive_message(QueueUrl=queue)["Messages"][0]["ReceiptHandle"]
    with proxy.receipts.lock:
        proxy.receipts.received[handle] -= 3600
    # WHEN its visibility is set to 11 h 1 s (12 h 1 s after its receipt) THEN SQS refuses
    error = _refusal(lambda: sqs.change_message_visibility(QueueUrl=queue, ReceiptHandle=handle, VisibilityTimeout=39601))
    assert error.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert error.response["Error"]["Code"] == "InvalidParameterValue"
    assert "Total VisibilityTimeout for the message is beyond the limit [43200 seconds]" in error.response["Error"]["Message"]
    # AND the batch form fails that entry only
    answer = sqs.change_message_visibility_batch(
        QueueUrl=queue,
        Entries=[{"Id": "over", "ReceiptHandle": handle, "VisibilityTimeout": 39601}, {"Id": "fine", "ReceiptHandle": handle, "VisibilityTimeout": 3000}],
    )
    assert [s["Id"] for s in answer["Successful"]] == ["fine"]
    assert [(f["Id"], f["Code"]) for f in answer["Failed"]] == [("over", "InvalidParameterValue")]
    # AND 11 h less a few seconds is allowed
    sqs.change_message_visibility(QueueUrl=queue, ReceiptHandle=handle, VisibilityTimeout=39590)


def test_a_visibility_sqs_allows_is_not_refused_by_the_emulator(sqs, queue):
    # GIVEN a message received some seconds after it was sent (the emulator counts the 12 h
    # cap from the send, SQS from the receipt)
    sqs.send_message(QueueUrl=queue, MessageBody="m")
    time.sleep(2.5)
    handle = sqs.receive_message(QueueUrl=queue, MessageSystemAttributeNames=["All"])["Messages"][0]["ReceiptHandle"]
    # WHEN its visibility is set to just under 12 h THEN it is accepted, as SQS does
    sqs.change_message_visibility(QueueUrl=queue, ReceiptHandle=handle, VisibilityTimeout=43199)
    answer = sqs.change_message_visibility_batch(QueueUrl=queue, Entries=[{"Id": "a", "ReceiptHandle": handle, "VisibilityTimeout": 43199}])
    assert [s["Id"] for s in answer["Successful"]] == ["a"] and not answer.get("Failed")
