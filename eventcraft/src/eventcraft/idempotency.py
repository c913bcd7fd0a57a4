"""Idempotency for handlers: Powertools' idempotency utility on DynamoDB, configured once.

Powertools does the algorithm (a conditional put of an INPROGRESS record, the stored
result replayed to duplicates, the record deleted when the handler raises so the retry
runs, in-progress expiry from the Lambda's remaining time). This module only fixes the
choices of this project:

- the table: key `id` (S), TTL attribute `expiration`, name from env IDEMPOTENCY_TABLE;
- a missing idempotency key is an error (Powertools' default only warns and then runs
  the handler without any protection);
- records live 24 h: EventBridge retries a target for up to 24 h by default, and a
  duplicate arriving after its record expired runs again;
- the key is the producer's `eventId`, not the envelope `id` (the outbox relay may publish
  one event twice, and each PutEvents gets a new envelope id).

Usage::

    from eventcraft import idempotency
    from eventcraft.idempotency import idempotent_function

    CONFIG = idempotency.config(idempotency.CONTRACT_EVENT_ID)

    @idempotent_function(data_keyword_argument="event", config=CONFIG,
                         persistence_store=idempotency.persistence())
    def welcome(event: UserSignedUp) -> dict: ...

    def handler(event, context):
        # or batch.process_batch(..., idempotency_config=CONFIG)
        CONFIG.register_lambda_context(context)
        ...

One `persistence()` per decorated function: Powertools configures a persistence layer
from the first config it sees and ignores any later one.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Final

from aws_lambda_powertools.utilities.idempotency import (
    DynamoDBPersistenceLayer,
    IdempotencyConfig,
    idempotent,
    idempotent_function,
)
from aws_lambda_powertools.utilities.idempotency.exceptions import (
    IdempotencyAlreadyInProgressError,
    IdempotencyKeyError,
    IdempotencyValidationError,
)

from eventcraft import clients

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.client import DynamoDBClient

__all__ = [
    "CONTRACT_EVENT_ID",
    "DEFAULT_EXPIRY_SECONDS",
    "EVENTBRIDGE_EVENT_ID",
    "IDEMPOTENCY_TABLE_ENV",
    "KEY_ATTRIBUTE",
    "SQS_BODY_EVENT_ID",
    "TTL_ATTRIBUTE",
    "IdempotencyAlreadyInProgressError",
    "IdempotencyKeyError",
    "IdempotencySetupError",
    "IdempotencyValidationError",
    "config",
    "idempotent",
    "idempotent_function",
    "persistence",
]

IDEMPOTENCY_TABLE_ENV: Final = "IDEMPOTENCY_TABLE"
# The table contract, for the component that creates the table.
KEY_ATTRIBUTE: Final = "id"
TTL_ATTRIBUTE: Final = "expiration"
DEFAULT_EXPIRY_SECONDS: Final = 24 * 60 * 60

# JMESPath of the producer's event id in the usual payloads:
EVENTBRIDGE_EVENT_ID: Final = "detail.eventId"  # @idempotent on an EventBridge-invoked handler
CONTRACT_EVENT_ID: Final = "eventId"  # @idempotent_function on a contract model (camelCase dump)
SQS_BODY_EVENT_ID: Final = "powertools_json(body).detail.eventId"  # an SQS record dict


class IdempotencySetupError(RuntimeError):
    """The function is not configured for idempotency (missing table name)."""


def persistence(
    table_name_env: str = IDEMPOTENCY_TABLE_ENV,
    *,
    table_name: str | None = None,
    boto3_client: DynamoDBClient | None = None,
) -> DynamoDBPersistenceLayer:
    """A DynamoDB persistence layer on the idempotency table.

    table_name: default the value of env `table_name_env` (IDEMPOTENCY_TABLE).
    boto3_client: default the container's shared DynamoDB client.
    """
    name = table_name or os.environ.get(table_name_env)
    if not name:
        raise IdempotencySetupError(
            f"environment variable {table_name_env} is not set: the function's component must "
            "pass the idempotency table name (and grant GetItem/PutItem/UpdateItem/DeleteItem "
            "on it), or pass table_name="
        )
    return DynamoDBPersistenceLayer(
        table_name=name,
        key_attr=KEY_ATTRIBUTE,
        expiry_attr=TTL_ATTRIBUTE,
        boto3_client=boto3_client or clients.client("dynamodb"),
    )


def config(
    key_jmespath: str,
    *,
    payload_validation_jmespath: str = "",
    expires_after_seconds: int = DEFAULT_EXPIRY_SECONDS,
    use_local_cache: bool = False,
) -> IdempotencyConfig:
    """An IdempotencyConfig keyed on `key_jmespath` (see the *_EVENT_ID constants, or a
    business key such as "accountId").

    payload_validation_jmespath: if set, a duplicate key whose payload differs there raises
        IdempotencyValidationError instead of replaying the stored result (a producer
        reused an id for another event). Default: no validation.
    expires_after_seconds: how long a completed record answers duplicates (default 24 h).
    use_local_cache: also keep completed records in memory (saves a read per duplicate).

    Register the Lambda context on every invocation (`cfg.register_lambda_context(ctx)`,
    done for you by `@idempotent` and by `batch.process_batch(idempotency_config=cfg)`):
    without it an invocation that times out leaves its key locked until the record expires.
    """
    if expires_after_seconds <= 0:
        raise ValueError(f"expires_after_seconds must be > 0, got {expires_after_seconds}")
    return IdempotencyConfig(
        event_key_jmespath=key_jmespath,
        payload_validation_jmespath=payload_validation_jmespath,
        raise_on_no_idempotency_key=True,
        expires_after_seconds=expires_after_seconds,
        use_local_cache=use_local_cache,
    )
