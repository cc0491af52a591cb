"""The pricing's replay of DynamoDB writes: `python -m pytest infra/bench -q`."""

import json

import aws_usage as u


def state(items=(), indexes=None):
    snap = {"keys": {"T": ["pk", "sk"]},
            "indexes": {"T": indexes if indexes is not None else [{"name": "gsi1", "keys": ["gsi1pk", "gsi1sk"], "projection": "ALL", "include": []}]},
            "items": {"T": list(items)}}
    return u.TableSizes.from_snapshot(snap)


def request(op, body):
    return u.Request("function", "dynamodb", op, {"TableName": "T", **body}, 0)


def test_a_put_of_an_indexed_item_is_written_to_its_index_at_the_same_size():
    # GIVEN an empty table with an index projecting every attribute
    s, t = state(), u.Tally()
    # WHEN an item of 1.5 KiB carrying the index's keys is put
    item = {"pk": {"S": "a"}, "sk": {"S": "b"}, "gsi1pk": {"S": "x"}, "gsi1sk": {"S": "y"}, "p": {"S": "z" * 1500}}
    rru, wru = u.dynamodb_units(request("PutItem", {"Item": item}), s, t)
    # THEN the table and the index each take 2 units
    assert (rru, wru, t.index_wru) == (0, 2, 2)


def test_an_item_without_the_index_keys_costs_no_index_write():
    s, t = state(), u.Tally()
    u.dynamodb_units(request("PutItem", {"Item": {"pk": {"S": "a"}, "sk": {"S": "b"}}}), s, t)
    assert t.index_wru == 0


def test_an_update_is_billed_at_the_larger_of_before_and_after_and_changes_the_item():
    # GIVEN a 2.5 KiB item outside any index
    big = {"pk": {"S": "a"}, "sk": {"S": "b"}, "blob": {"S": "z" * 2500}, "n": {"N": "1"}}
    s, t = state([big]), u.Tally()
    # WHEN an update removes the blob and adds to a counter
    body = {"Key": {"pk": {"S": "a"}, "sk": {"S": "b"}}, "UpdateExpression": "ADD #n :one REMOVE blob SET c = if_not_exists(c, :z) + :one",
            "ExpressionAttributeNames": {"#n": "n"}, "ExpressionAttributeValues": {":one": {"N": "1"}, ":z": {"N": "0"}}}
    _, wru = u.dynamodb_units(request("UpdateItem", body), s, t)
    # THEN it is billed on the item before (3 units), and the item is now small
    assert wru == 3
    after = s.get("T", {"pk": {"S": "a"}, "sk": {"S": "b"}})
    assert after["n"] == {"N": "2"} and after["c"] == {"N": "1"} and "blob" not in after
    _, wru = u.dynamodb_units(request("UpdateItem", body), s, t)
    assert wru == 1 and t.unmodelled_updates == 0


def test_an_index_key_change_is_a_delete_and_a_put_in_the_index():
    item = {"pk": {"S": "a"}, "sk": {"S": "b"}, "gsi1pk": {"S": "x"}, "gsi1sk": {"S": "1"}}
    s, t = state([item]), u.Tally()
    body = {"Key": {"pk": {"S": "a"}, "sk": {"S": "b"}}, "UpdateExpression": "SET gsi1sk = :v", "ExpressionAttributeValues": {":v": {"S": "2"}}}
    u.dynamodb_units(request("UpdateItem", body), s, t)
    assert t.index_wru == 2


def test_a_put_conditioned_on_absence_fails_on_an_existing_item_and_changes_nothing():
    item = {"pk": {"S": "a"}, "sk": {"S": "b"}, "gsi1pk": {"S": "x"}, "gsi1sk": {"S": "1"}}
    s, t = state([item]), u.Tally()
    other = {**item, "p": {"S": "z" * 3000}}
    _, wru = u.dynamodb_units(request("PutItem", {"Item": other, "ConditionExpression": "attribute_not_exists(pk)"}), s, t)
    assert (wru, t.index_wru, t.failed_conditions) == (1, 0, 1)
    assert "p" not in s.get("T", item)


def test_a_delete_leaves_the_index_too():
    item = {"pk": {"S": "a"}, "sk": {"S": "b"}, "gsi1pk": {"S": "x"}, "gsi1sk": {"S": "1"}}
    s, t = state([item]), u.Tally()
    _, wru = u.dynamodb_units(request("DeleteItem", {"Key": {"pk": {"S": "a"}, "sk": {"S": "b"}}}), s, t)
    assert (wru, t.index_wru) == (1, 1)
    assert s.get("T", item) is None


def test_a_keys_only_index_is_written_at_the_keys_size():
    item = {"pk": {"S": "a"}, "sk": {"S": "b"}, "gsi1pk": {"S": "x"}, "gsi1sk": {"S": "1"}, "p": {"S": "z" * 3000}}
    s, t = state(indexes=[{"name": "g", "keys": ["gsi1pk", "gsi1sk"], "projection": "KEYS_ONLY", "include": []}]), u.Tally()
    u.dynamodb_units(request("PutItem", {"Item": item}), s, t)
    assert t.index_wru == 1


def test_growing_the_payload_grows_every_copy():
    body = json.dumps({"MessageBody": json.dumps({"data": {"d": "[pad" + "y" * 10 + "]"}})})
    grown = u.grow_payload(body, 100)
    assert len(grown) == len(body) + 100
    assert len(u.PAD.findall(grown)) == 1
