"""DynamoDB helpers shared by eventcraft's adapters and the handlers: items as plain Python
values, the one-item read, and the base of the adapters on one table.

    item = dynamodb.get("orders", {"pk": "order#1"})  # strongly consistent; None if absent
    put_item = dynamodb.serialize({"pk": "order#1", "totalCents": 7499})

    class WindowStore(dynamodb.TableAdapter): ...  # self.table_name, self.client

boto3 is imported lazily (its TypeSerializer / TypeDeserializer on first use, the client
through eventcraft.clients): importing this module costs nothing at cold start.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from eventcraft import clients

if TYPE_CHECKING:
    from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
    from mypy_boto3_dynamodb.client import DynamoDBClient


class TableAdapter:
    """Base of an adapter on one DynamoDB table: `table_name`, and `client`: the one
    passed (tests inject one), else the container's (eventcraft.clients), created on first
    use, not at construction (cold start)."""

    def __init__(self, table_name: str, *, client: DynamoDBClient | None = None) -> None:
        self.table_name = table_name
        self._client = client

    @property
    def client(self) -> DynamoDBClient:
        if self._client is None:
            self._client = clients.client("dynamodb")
        return self._client


@functools.cache
def _deserializer() -> TypeDeserializer:
    from boto3.dynamodb.types import TypeDeserializer  # lazy: cold start

    return TypeDeserializer()


@functools.cache
def _serializer() -> TypeSerializer:
    from boto3.dynamodb.types import TypeSerializer  # lazy: cold start

    return TypeSerializer()


def deserialize(item: Mapping[str, Any]) -> dict[str, Any]:
    """A DynamoDB item (typed JSON: {"S": ...}) as plain Python values (numbers as
    Decimal, sets as sets)."""
    deserializer = _deserializer()
    return {key: deserializer.deserialize(value) for key, value in item.items()}


def serialize(item: Mapping[str, Any]) -> dict[str, Any]:
    """Plain Python values (str, int, Decimal, bool, lists, dicts; not float, which
    DynamoDB rejects) as a DynamoDB item."""
    serializer = _serializer()
    return {key: serializer.serialize(value) for key, value in item.items()}


def get(table: str, key: Mapping[str, str], *, consistent: bool = True) -> dict[str, Any] | None:
    """The item of `table` whose string key attributes are `key` (e.g. {"pk": "order#1"}),
    as plain values, or None. consistent: a strongly consistent read (default True; False
    reads eventually consistent, DynamoDB's default)."""
    typed_key: dict[str, Any] = {name: {"S": value} for name, value in key.items()}
    item = (
        clients.client("dynamodb")
        .get_item(TableName=table, Key=typed_key, ConsistentRead=consistent)
        .get("Item")
    )
    return None if item is None else deserialize(item)
