"""One boto3 client per AWS service per container, created on first use.

Every adapter in eventcraft takes an optional client (tests and callers inject one) and
falls back to `client(service)`. boto3 is imported here, lazily: a module that only
needs contracts or pure helpers does not pay for it.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any, Literal, overload

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.client import DynamoDBClient
    from mypy_boto3_events.client import EventBridgeClient

_lock = threading.Lock()
_clients: dict[str, Any] = {}


@overload
def client(service: Literal["dynamodb"]) -> DynamoDBClient: ...
@overload
def client(service: Literal["events"]) -> EventBridgeClient: ...
@overload
def client(service: str) -> Any: ...
def client(service: str) -> Any:
    """The container's client for `service` (region and credentials from the environment).

    Retries use botocore's "standard" mode (throttling and transient errors, with backoff).
    """
    existing = _clients.get(service)
    if existing is not None:
        return existing
    with _lock:
        if service not in _clients:
            # Imported here, not at module level: cold start.
            import boto3
            from botocore.config import Config

            # A session of our own: boto3's default session is not thread-safe.
            session = boto3.session.Session()
            _clients[service] = session.client(
                service,  # type: ignore[call-overload]
                config=Config(retries={"mode": "standard"}),
            )
        return _clients[service]


def reset() -> None:
    """Forget the cached clients (tests: a client must not outlive the moto mock)."""
    with _lock:
        _clients.clear()
