"""`speedups()`: moto and botocore patched for long sandbox runs, without changing
what any call answers (on while a `SandboxSession` runs)."""

from __future__ import annotations

import base64
import contextlib
import copy
import functools
import json
import threading
from collections.abc import Callable, Iterator
from typing import Any, Final
from unittest import mock

import botocore.loaders
import botocore.session

__all__ = ["speedups"]


class _UniquePaths(list[str]):
    """A loader's search paths shared by many sessions: boto3 appends its own data
    path at every session's creation; once is enough."""

    def append(self, path: str) -> None:
        if path not in self:
            super().append(path)

    def insert(self, index: Any, path: str) -> None:
        if path not in self:
            super().insert(index, path)


@contextlib.contextmanager
def speedups() -> Iterator[None]:
    """Make a long sandbox run fast, without changing what any call does (restored on
    exit). Each of these was most of a demo's time at some point:

    - botocore: every session created inside shares one `Loader` per data path (each
      Lambda container and Step Functions task creates its own session, and loading the
      service models costs ~0.1 s a client); the models are read-only;
    - moto DynamoDB: TransactWriteItems deep-copies every table it touches (items and
      stream records) to roll back a failure: O(table size) per transaction, quadratic
      over a run. Here it is rolled back item by item (`_transact_write_items`);
    - moto Step Functions: each execution parses the state machine's definition with
      antlr (~0.3 s); the parse tree of a definition is kept (a fresh program is built
      from it for every execution, so no execution shares state with another);
    - moto's request dispatch lists the methods of the service's response class with
      `inspect.getmembers` on every request; the list is kept per class;
    - moto DynamoDB: its generic response serializer walks the output shape of every
      attribute value (6x slower than `json.dumps` on item-heavy responses); the
      data-plane results, already in DynamoDB's JSON wire format, are dumped as they
      are (`_dynamodb_serialized`; tests/sandbox/test_speedups.py compares both).
    """
    from moto.core import responses as moto_responses
    from moto.core.utils import method_names_from_class
    from moto.dynamodb import models as dynamodb_models
    from moto.dynamodb.responses import DynamoHandler
    from moto.stepfunctions.parser.asl.parse import asl_parser

    loaders: dict[str | None, Any] = {}
    lock = threading.Lock()

    def create_loader(search_path_string: str | None = None) -> Any:
        with lock:
            loader = loaders.get(search_path_string)
            if loader is None:
                loader = botocore.loaders.create_loader(search_path_string)
                paths = loader.search_paths  # botocore keeps them in `_search_paths`
                loader._search_paths = _UniquePaths(paths)  # type: ignore[attr-defined]
                loaders[search_path_string] = loader
            return loader

    method_names: dict[type, list[str]] = {}

    def cached_method_names(clazz: Any) -> list[str]:
        names = method_names.get(clazz)
        if names is None:
            names = method_names[clazz] = method_names_from_class(clazz)
        return list(names)

    with contextlib.ExitStack() as stack:
        patch = stack.enter_context
        patch(mock.patch.object(botocore.session, "create_loader", create_loader))
        patch(mock.patch.object(moto_responses, "method_names_from_class", cached_method_names))
        patch(mock.patch.object(dynamodb_models, "copy", _TableCopies()))
        original_transact = dynamodb_models.DynamoDBBackend.transact_write_items
        patch(
            mock.patch.object(
                dynamodb_models.DynamoDBBackend,
                "transact_write_items",
                functools.partialmethod(_transact_write_items, original_transact),
            )
        )
        patch(
            mock.patch.object(
                DynamoHandler,
                "serialized",
                functools.partialmethod(_dynamodb_serialized, DynamoHandler.serialized),
            )
        )
        parser = asl_parser.AmazonStateLanguageParser
        patch(mock.patch.object(parser, "parse", staticmethod(_cached_asl_parse(parser.parse))))
        yield


# DynamoDB operations whose results are items (plain dicts in the wire format).
_DYNAMODB_DATA_PLANE: Final = frozenset(
    {
        "GetItem",
        "PutItem",
        "UpdateItem",
        "DeleteItem",
        "Query",
        "Scan",
        "TransactWriteItems",
        "TransactGetItems",
        "BatchGetItem",
        "BatchWriteItem",
    }
)


def _wire_bytes(value: Any) -> str:
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    raise TypeError(type(value).__name__)


def _as_floats(value: Any) -> Any:
    """Every number in `value` as a float (ConsumedCapacity's units are doubles)."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, dict):
        return {k: _as_floats(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_as_floats(v) for v in value]
    return value


def _dynamodb_serialized(handler: Any, original: Callable[..., Any], action_result: Any) -> Any:
    """moto's `DynamoHandler.serialized`, by `json.dumps` for the data-plane results
    (binary values base64 and capacity units as floats, as the serializer writes them);
    errors and other operations go to moto's serializer."""
    result = action_result.result
    if not isinstance(result, dict) or handler._get_action() not in _DYNAMODB_DATA_PLANE:
        return original(handler, action_result)
    if "ConsumedCapacity" in result:
        result = {**result, "ConsumedCapacity": _as_floats(result["ConsumedCapacity"])}
    try:
        body = json.dumps(result, default=_wire_bytes)
    except TypeError:
        return original(handler, action_result)
    headers = {"Content-Type": "application/x-amz-json-1.0", **handler.response_headers}
    return 200, headers, body


def _cached_asl_parse(parse: Callable[[str], Any]) -> Callable[[str], Any]:
    """`AmazonStateLanguageParser.parse` keeping each definition's antlr parse tree; the
    program (evaluation components, which hold per-execution state) is built anew."""
    from moto.stepfunctions.parser.asl.parse.preprocessor import Preprocessor

    trees: dict[str, Any] = {}
    lock = threading.Lock()

    def cached(definition: str) -> Any:
        with lock:
            tree = trees.get(definition)
        if tree is None:
            _, tree = parse(definition)  # raises for an invalid definition: not kept
            with lock:
                trees[definition] = tree
        return Preprocessor().visit(tree), tree

    return cached


class _TableCopies:
    """`copy` for moto's DynamoDB backend module (see `speedups`): a "deep copy" of a
    table is the table itself (`_transact_write_items` undoes a failed transaction
    item by item instead); anything else is copied as before."""

    def __getattr__(self, name: str) -> Any:
        return getattr(copy, name)

    @staticmethod
    def deepcopy(value: Any, memo: Any = None) -> Any:
        from moto.dynamodb.models.table import Table

        if isinstance(value, Table):
            return value
        return copy.deepcopy(value, memo)


def _transact_write_items(
    backend: Any, original: Callable[..., None], transact_items: list[dict[str, Any]]
) -> None:
    """moto's TransactWriteItems, rolled back by item: before it runs, a copy of each item
    the transaction names (or None: absent) and the length of each touched table's
    stream; if it fails, those items are put back and the stream records it appended
    are dropped, so a cancelled transaction leaves no trace (as in AWS, and as moto's
    whole-table copy did)."""
    from moto.dynamodb.models.dynamo_type import DynamoType

    saved: list[tuple[Any, Any, Any, Any]] = []
    streams: dict[int, tuple[Any, int]] = {}
    for entry in transact_items:
        try:
            _, op = next(iter(entry.items()))
            table = backend.tables.get(op.get("TableName"))
            if table is None:
                continue
            source = op["Item"] if "Item" in op else op["Key"]
            hash_key = DynamoType(source[table.hash_key_attr])
            range_key = DynamoType(source[table.range_key_attr]) if table.range_key_attr else None
            current = table.get_item(hash_key, range_key)
        except Exception:  # noqa: S112 - a malformed operation: the transaction reports it
            continue
        saved.append((table, hash_key, range_key, copy.deepcopy(current)))
        if table.stream_shard is not None:
            streams.setdefault(id(table), (table.stream_shard, len(table.stream_shard.items)))
    try:
        original(backend, transact_items)
    except Exception:
        for table, hash_key, range_key, item in reversed(saved):
            if range_key is None:
                if item is None:
                    table.items.pop(hash_key, None)
                else:
                    table.items[hash_key] = item
            elif item is None:
                table.items.get(hash_key, {}).pop(range_key, None)
            else:
                table.items[hash_key][range_key] = item
        for shard, length in streams.values():
            del shard.items[length:]
        raise
