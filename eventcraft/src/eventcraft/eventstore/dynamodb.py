"""DynamoDB adapters of the event store (low-level client; boto3 is not imported here).

Events table: partition key `aggregateId` (S), sort key `version` (N); attributes
`type` (S), `data` (S: JSON text, so floats and nesting survive exactly), `occurredAt`
(S, ISO 8601), `eventId` (S), `schemaVersion` (N). Enable a stream (NEW_IMAGE) to
project.
Snapshots table: partition key `aggregateId` (S); attributes `version` (N), `state`
(S: JSON), `schemaVersion` (N), `takenAt` (S). One item per aggregate: the latest.
Read model table: partition key `key_attribute` (default `aggregateId`, S); `version`
(N) and the view's fields as top-level attributes (queryable, indexable).

IAM (TransactWriteItems is authorized per action inside it): the recorder needs
dynamodb:PutItem, dynamodb:ConditionCheckItem and dynamodb:Query on the events table; the
snapshot recorder GetItem and PutItem on the snapshots table (PutItem only where
snapshots are written: `rehydrate(write_snapshot=False)` reads only); the read model
GetItem and PutItem on its table.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from eventcraft.dynamodb import TableAdapter, deserialize, serialize

from .model import ConcurrencyError, NewEvent, Snapshot, StoredEvent, stored

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.client import DynamoDBClient
    from mypy_boto3_dynamodb.type_defs import (
        AttributeValueTypeDef,
        QueryInputTypeDef,
        TransactWriteItemTypeDef,
    )

_KEY_NAMES = {"#a": "aggregateId", "#v": "version"}


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def _plain(value: Any) -> Any:
    """Deserialised DynamoDB values as JSON-compatible Python (Decimal -> int/float)."""
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | set | frozenset | tuple):
        return [_plain(v) for v in value]
    return value


def _deserialize(image: Mapping[str, Any]) -> dict[str, Any]:
    return {k: _plain(v) for k, v in deserialize(image).items()}


def event_item(record: StoredEvent) -> dict[str, AttributeValueTypeDef]:
    """The DynamoDB item of a stored event."""
    return {
        "aggregateId": {"S": record.aggregate_id},
        "version": {"N": str(record.version)},
        "type": {"S": record.type},
        "data": {"S": _dumps(dict(record.data))},
        "occurredAt": {"S": record.occurred_at},
        "eventId": {"S": record.event_id},
        "schemaVersion": {"N": str(record.schema_version)},
    }


def stored_event_from_image(image: Mapping[str, Any]) -> StoredEvent:
    """A StoredEvent from an events-table item: a low-level image ({"S": ...}, as in Query
    results and raw stream records) or an already deserialised one (Powertools'
    DynamoDBRecord.dynamodb.new_image). `data` may be JSON text or a map."""
    if isinstance(image.get("version"), Mapping):
        # Low-level: decoded by hand on this hot path (every event a rebuild reads).
        data_value = image.get("data", {"M": {}})
        data: Any = (
            json.loads(data_value["S"])
            if "S" in data_value
            else _deserialize({"data": data_value})["data"]
        )
        return StoredEvent(
            aggregate_id=image["aggregateId"]["S"],
            version=int(image["version"]["N"]),
            type=image["type"]["S"],
            data=data,
            occurred_at=image.get("occurredAt", {}).get("S", ""),
            event_id=image.get("eventId", {}).get("S", ""),
            schema_version=int(image.get("schemaVersion", {}).get("N", "1")),
        )
    plain = {k: _plain(v) for k, v in image.items()}
    data = plain.get("data", {})
    return StoredEvent(
        aggregate_id=str(plain["aggregateId"]),
        version=int(plain["version"]),
        type=str(plain["type"]),
        data=json.loads(data) if isinstance(data, str) else data,
        occurred_at=str(plain.get("occurredAt", "")),
        event_id=str(plain.get("eventId", "")),
        schema_version=int(plain.get("schemaVersion", 1)),
    )


def stored_events_from_stream(event: Mapping[str, Any]) -> list[StoredEvent]:
    """The events inserted, per a DynamoDB Streams Lambda event of the events table
    (stream view NEW_IMAGE or NEW_AND_OLD_IMAGES); MODIFY/REMOVE records are skipped."""
    return [
        stored_event_from_image(record["dynamodb"]["NewImage"])
        for record in event.get("Records", [])
        if record.get("eventName") == "INSERT"
    ]


class DynamoDBEventRecorder(TableAdapter):
    """Appends events with conditional writes; reads them with paged, consistent Query.

    client: a DynamoDB client (default: the container's, from eventcraft.clients).
    page_size: Query `Limit` (default: none, i.e. DynamoDB's 1 MB pages).
    """

    def __init__(
        self,
        table_name: str,
        *,
        client: DynamoDBClient | None = None,
        page_size: int | None = None,
    ) -> None:
        if page_size is not None and page_size < 1:
            raise ValueError(f"page_size must be >= 1 or None, got {page_size}")
        super().__init__(table_name, client=client)
        self.page_size = page_size

    def append(
        self, aggregate_id: str, expected_version: int, events: Sequence[NewEvent]
    ) -> list[StoredEvent]:
        records = stored(aggregate_id, expected_version, events)
        condition = "attribute_not_exists(#a) AND attribute_not_exists(#v)"
        client = self.client
        if expected_version == 0 and len(records) == 1:
            # The first event of a stream: no predecessor to check, so a plain
            # conditional put (half the cost of a transaction).
            try:
                client.put_item(
                    TableName=self.table_name,
                    Item=event_item(records[0]),
                    ConditionExpression=condition,
                    ExpressionAttributeNames=_KEY_NAMES,
                )
            except client.exceptions.ConditionalCheckFailedException:
                raise ConcurrencyError(aggregate_id, 0, 1) from None
            return records

        actions: list[TransactWriteItemTypeDef] = []
        if expected_version > 0:
            # The predecessor must exist: an expected_version ahead of the stream would
            # otherwise leave a gap that projections could never fill.
            actions.append(
                {
                    "ConditionCheck": {
                        "TableName": self.table_name,
                        "Key": {
                            "aggregateId": {"S": aggregate_id},
                            "version": {"N": str(expected_version)},
                        },
                        "ConditionExpression": "attribute_exists(#v)",
                        "ExpressionAttributeNames": {"#v": "version"},
                    }
                }
            )
        checked = len(actions)
        actions.extend(
            {
                "Put": {
                    "TableName": self.table_name,
                    "Item": event_item(record),
                    "ConditionExpression": condition,
                    "ExpressionAttributeNames": _KEY_NAMES,
                }
            }
            for record in records
        )
        try:
            client.transact_write_items(TransactItems=actions)
        except client.exceptions.TransactionCanceledException as error:
            codes = [r.get("Code", "None") for r in error.response.get("CancellationReasons", [])]
            raise _concurrency_error(aggregate_id, expected_version, codes, checked) from error
        return records

    def read(
        self, aggregate_id: str, after_version: int = 0, up_to_version: int | None = None
    ) -> Iterator[StoredEvent]:
        values: dict[str, AttributeValueTypeDef] = {":a": {"S": aggregate_id}}
        if up_to_version is None:
            condition = "#a = :a AND #v > :after"
            values[":after"] = {"N": str(after_version)}
        else:
            if up_to_version <= after_version:
                return
            condition = "#a = :a AND #v BETWEEN :lo AND :hi"
            values[":lo"] = {"N": str(after_version + 1)}
            values[":hi"] = {"N": str(up_to_version)}
        request: QueryInputTypeDef = {
            "TableName": self.table_name,
            "KeyConditionExpression": condition,
            "ExpressionAttributeNames": _KEY_NAMES,
            "ExpressionAttributeValues": values,
            "ConsistentRead": True,
        }
        if self.page_size is not None:
            request["Limit"] = self.page_size
        client = self.client
        while True:
            page = client.query(**request)
            for item in page.get("Items", []):
                yield stored_event_from_image(item)
            last = page.get("LastEvaluatedKey")
            if not last:
                return
            request["ExclusiveStartKey"] = last


def _concurrency_error(
    aggregate_id: str, expected_version: int, codes: list[str], checked: int
) -> Exception:
    """The error for a cancelled append, from its CancellationReasons (one per action:
    the predecessor check first if `checked`, then one Put per event)."""
    for index, code in enumerate(codes[checked:], start=1):
        if code == "ConditionalCheckFailed":
            return ConcurrencyError(aggregate_id, expected_version, expected_version + index)
    if checked and codes and codes[0] == "ConditionalCheckFailed":
        return ConcurrencyError(
            aggregate_id, expected_version, expected_version + 1, reason="ahead"
        )
    for index, code in enumerate(codes[checked:], start=1):
        if code == "TransactionConflict":
            return ConcurrencyError(
                aggregate_id, expected_version, expected_version + index, reason="in-flight"
            )
    return RuntimeError(
        f"Append to aggregate {aggregate_id!r} after version {expected_version} was "
        f"cancelled by DynamoDB for reasons {codes}: nothing was written; retry later "
        "(throttling) or fix the request (validation)."
    )


class DynamoDBSnapshotRecorder(TableAdapter):
    """The latest snapshot per aggregate; a stale writer never overwrites a newer one."""

    def get(self, aggregate_id: str) -> Snapshot | None:
        item = self.client.get_item(
            TableName=self.table_name,
            Key={"aggregateId": {"S": aggregate_id}},
            ConsistentRead=True,
        ).get("Item")
        if item is None:
            return None
        return Snapshot(
            aggregate_id=aggregate_id,
            version=int(item["version"]["N"]),
            state=json.loads(item["state"]["S"]),
            schema_version=int(item["schemaVersion"]["N"]),
            taken_at=item.get("takenAt", {}).get("S", ""),
        )

    def put(self, snapshot: Snapshot) -> bool:
        client = self.client
        try:
            client.put_item(
                TableName=self.table_name,
                Item={
                    "aggregateId": {"S": snapshot.aggregate_id},
                    "version": {"N": str(snapshot.version)},
                    "state": {"S": _dumps(snapshot.state)},
                    "schemaVersion": {"N": str(snapshot.schema_version)},
                    "takenAt": {"S": snapshot.taken_at},
                },
                # The same rule as model.snapshot_replaces.
                ConditionExpression="attribute_not_exists(#a) OR #v < :v OR #sv < :sv",
                ExpressionAttributeNames={**_KEY_NAMES, "#sv": "schemaVersion"},
                ExpressionAttributeValues={
                    ":v": {"N": str(snapshot.version)},
                    ":sv": {"N": str(snapshot.schema_version)},
                },
            )
        except client.exceptions.ConditionalCheckFailedException:
            return False
        return True


class DynamoDBReadModel(TableAdapter):
    """Read model rows: the view's fields as top-level attributes plus `version`.

    Views are dicts of JSON values (numbers come back as int or float); `version` and
    the key attribute are reserved names.
    """

    def __init__(
        self,
        table_name: str,
        *,
        key_attribute: str = "aggregateId",
        client: DynamoDBClient | None = None,
    ) -> None:
        super().__init__(table_name, client=client)
        self.key_attribute = key_attribute

    def get(self, key: str) -> tuple[Any | None, int]:
        item = self.client.get_item(
            TableName=self.table_name,
            Key={self.key_attribute: {"S": key}},
            ConsistentRead=True,
        ).get("Item")
        if item is None:
            return None, 0
        view = _deserialize(item)
        version = int(view.pop("version", 0))
        view.pop(self.key_attribute, None)
        return view, version

    def put(self, key: str, view: Any, version: int, expected_version: int) -> bool:
        if not isinstance(view, Mapping):
            raise TypeError(
                f"DynamoDBReadModel stores dict views; the reducer returned a "
                f"{type(view).__name__}. Return a dict of JSON values."
            )
        clash = {"version", self.key_attribute} & set(view)
        if clash:
            raise ValueError(
                f"View fields {sorted(clash)} clash with the read model's own attributes "
                f"(version, {self.key_attribute}): rename them in the reducer."
            )
        item = serialize(json.loads(_dumps(dict(view)), parse_float=Decimal))
        item[self.key_attribute] = {"S": key}
        item["version"] = {"N": str(version)}
        if expected_version == 0:
            condition = "attribute_not_exists(#k)"
            values: dict[str, AttributeValueTypeDef] | None = None
        else:
            condition = "#v = :expected"
            values = {":expected": {"N": str(expected_version)}}
        names = {"#k": self.key_attribute} if expected_version == 0 else {"#v": "version"}
        client = self.client
        try:
            if values is None:
                client.put_item(
                    TableName=self.table_name,
                    Item=item,
                    ConditionExpression=condition,
                    ExpressionAttributeNames=names,
                )
            else:
                client.put_item(
                    TableName=self.table_name,
                    Item=item,
                    ConditionExpression=condition,
                    ExpressionAttributeNames=names,
                    ExpressionAttributeValues=values,
                )
        except client.exceptions.ConditionalCheckFailedException:
            return False
        return True
