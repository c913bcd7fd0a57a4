"""Shared moto helpers for the eventkit tests of the event store, aggregation and windows
(no tests here).

moto's DynamoDB backend has no lock: two threads' conditional writes can both pass their
condition (checked here: 15 of 100 rounds of 8 concurrent transactions had != 1 winner,
others crashed with "dictionary changed size during iteration"). Real DynamoDB applies
each request atomically, so `DynamoDB.client` runs one request at a time: the code under
test still interleaves between its requests, as it would on AWS.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import boto3
from moto import mock_aws

from eventkit import clients


class SerializedClient:
    """A boto3 client whose requests run one at a time (see the module docstring)."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner
        self._lock = threading.Lock()

    @property
    def exceptions(self) -> Any:
        return self._inner.exceptions

    @property
    def meta(self) -> Any:
        return self._inner.meta

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._inner, name)
        if not callable(attribute):
            return attribute

        def call(*args: Any, **kwargs: Any) -> Any:
            with self._lock:
                return attribute(*args, **kwargs)

        return call


@dataclass
class ReadCounter:
    """Calls per operation, and items Query/GetItem returned, counted by botocore
    `after-call` hooks (what DynamoDB answered, not what the code says it read)."""

    query_calls: int = 0
    query_items: int = 0
    get_calls: int = 0
    get_items: int = 0
    calls: Counter[str] = field(default_factory=Counter)

    def reset(self) -> None:
        self.query_calls = self.query_items = self.get_calls = self.get_items = 0
        self.calls.clear()


@dataclass
class DynamoDB:
    """A moto DynamoDB: `client` (serialized, read-counted) and table helpers."""

    client: Any
    raw: Any
    reads: ReadCounter

    def create_table(
        self,
        name: str,
        hash_key: str,
        range_key: tuple[str, str] | None = None,
        *,
        stream: bool = False,
    ) -> str:
        schema: list[dict[str, str]] = [{"AttributeName": hash_key, "KeyType": "HASH"}]
        attributes = [{"AttributeName": hash_key, "AttributeType": "S"}]
        if range_key is not None:
            schema.append({"AttributeName": range_key[0], "KeyType": "RANGE"})
            attributes.append({"AttributeName": range_key[0], "AttributeType": range_key[1]})
        extra: dict[str, Any] = {}
        if stream:
            extra["StreamSpecification"] = {"StreamEnabled": True, "StreamViewType": "NEW_IMAGE"}
        self.raw.create_table(
            TableName=name,
            KeySchema=schema,
            AttributeDefinitions=attributes,
            BillingMode="PAY_PER_REQUEST",
            **extra,
        )
        return name

    def batch_put(self, table: str, items: list[dict[str, Any]]) -> None:
        """Unconditional bulk load (fixtures only: BatchWriteItem cannot be conditional)."""
        for start in range(0, len(items), 25):
            request = {
                table: [{"PutRequest": {"Item": item}} for item in items[start : start + 25]]
            }
            while request:
                request = self.raw.batch_write_item(RequestItems=request).get("UnprocessedItems")


@contextmanager
def moto_dynamodb() -> Iterator[DynamoDB]:
    with mock_aws():
        clients.reset()
        raw = boto3.client("dynamodb", region_name="us-east-1")
        reads = ReadCounter()

        def count(event_name: str, parsed: dict[str, Any], **_: Any) -> None:
            reads.calls[event_name.rsplit(".", 1)[-1]] += 1
            if event_name.endswith(".Query"):
                reads.query_calls += 1
                reads.query_items += len(parsed.get("Items", []))
            elif event_name.endswith(".GetItem"):
                reads.get_calls += 1
                reads.get_items += 1 if "Item" in parsed else 0

        raw.meta.events.register("after-call.dynamodb", count)
        try:
            yield DynamoDB(client=SerializedClient(raw), raw=raw, reads=reads)
        finally:
            clients.reset()


def run_threads(count: int, target: Callable[[int], Any]) -> list[Any]:
    """Run target(0..count-1) in threads released together; results (or the exception
    raised) in index order."""
    barrier = threading.Barrier(count)
    results: list[Any] = [None] * count

    def run(index: int) -> None:
        barrier.wait()
        try:
            results[index] = target(index)
        except Exception as error:
            results[index] = error

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results
