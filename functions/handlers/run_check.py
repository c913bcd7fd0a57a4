"""The fork of the fork/join: one check of an order (inventory, credit or shipping quote).

One function per check, all with this code: env CHECK_NAME is "inventory", "credit" or
"shippingQuote" (contracts.CHECKS).
- `handler(event, context)` (choreography): OrderPlaced (EventBridge rule target) ->
  CheckCompleted on EVENT_BUS_NAME (`aggregate_checks` joins them);
- `task(event, context)` (orchestration: a branch of the Step Functions Parallel state
  of `components.saga.parallel_checks`, branch name = CHECK_NAME): the saga state
  (carrying the OrderPlaced) -> the check's result {"passed", "reason", "quoteCents"}.
A check that does not pass is a result, not an error: the join decides.

What each check reads:
- inventory: the stock items `sku#<sku>` {available} of INVENTORY_TABLE (key `pk`, the
  layout of `handlers.reserve_inventory`), one BatchGetItem; reserves nothing;
- credit: the customer's `creditLimitCents` in CUSTOMERS_TABLE (key `customerId`,
  `domain.enrichment`'s layout);
- shippingQuote: nothing (a rate table in `domain.checks`).

Idempotency of `handler`: Powertools, keyed on the OrderPlaced's eventId (the key
includes the function name, so the three checks do not collide). The effect is a
publish, and the stock or the limit may change between two deliveries: the first result
is stored and replayed, so one CheckCompleted goes out with one content; its eventId is
derived from the OrderPlaced's, and the join keeps a check's first result only, so even
a duplicate that slipped through would change nothing. `task` has no effect beyond its
answer; Step Functions keeps it.

ACCESS is the union for the module; CHECK_ACCESS is what each check's function needs
(grant that one per function for least privilege).
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Final

from contracts import CheckName, CheckResult, OrderLine, OrderPlaced
from domain import checks
from domain.inventory import stock_key
from eventkit import clients
from eventkit.envelopes import from_eventbridge
from eventkit.publisher import Publisher

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.idempotency import IdempotencyConfig

# Literal (not computed) so that it can be read without running code; a test checks that
# ACCESS is the union of CHECK_ACCESS.
ACCESS: Final[dict[str, frozenset[str]]] = {
    "INVENTORY_TABLE": frozenset({"dynamodb:BatchGetItem"}),
    "CUSTOMERS_TABLE": frozenset({"dynamodb:GetItem"}),
    "EVENT_BUS_NAME": frozenset({"events:PutEvents"}),
    "IDEMPOTENCY_TABLE": frozenset(
        {"dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem"}
    ),
}
_PUBLISH: Final = ("EVENT_BUS_NAME", "IDEMPOTENCY_TABLE")  # `handler` only; `task` needs neither
CHECK_ACCESS: Final[Mapping[CheckName, dict[str, frozenset[str]]]] = {
    "inventory": {name: ACCESS[name] for name in ("INVENTORY_TABLE", *_PUBLISH)},
    "credit": {name: ACCESS[name] for name in ("CUSTOMERS_TABLE", *_PUBLISH)},
    "shippingQuote": {name: ACCESS[name] for name in _PUBLISH},
}
CHECK_NAME_ENV: Final = "CHECK_NAME"
INVENTORY_TABLE_ENV: Final = "INVENTORY_TABLE"
MAX_BATCH_GET: Final = 100  # keys per BatchGetItem


class ConfigurationError(RuntimeError):
    """A required environment variable is missing or invalid."""


def _env(name: str) -> str:
    value = os.environ.get(name)
    if not value:
        raise ConfigurationError(
            f"environment variable {name} is not set: the function's component must set it "
            "(CHECK_ACCESS in handlers.run_check lists what each check's role needs)"
        )
    return value


def configured_check() -> CheckName:
    try:
        return checks.check_name(os.environ.get(CHECK_NAME_ENV))
    except checks.UnknownCheckError as exc:
        raise ConfigurationError(str(exc)) from None


# --- adapters ------------------------------------------------------------------------------


def available_stock(lines: Sequence[OrderLine]) -> dict[str, int]:
    """sku -> units available now (absent: no stock item)."""
    table = _env(INVENTORY_TABLE_ENV)
    ddb = clients.client("dynamodb")
    keys = [{"pk": {"S": stock_key(line.sku)}} for line in lines]
    stock: dict[str, int] = {}
    for start in range(0, len(keys), MAX_BATCH_GET):
        request: dict[str, Any] = {
            table: {"Keys": keys[start : start + MAX_BATCH_GET], "ConsistentRead": True}
        }
        while request:
            response = ddb.batch_get_item(RequestItems=request)
            for item in response.get("Responses", {}).get(table, []):
                stock[item["sku"]["S"]] = int(item["available"]["N"])
            request = dict(response.get("UnprocessedKeys") or {})
    return stock


def run(check: CheckName, order: OrderPlaced) -> CheckResult:
    """Run one check on an order."""
    if check == "inventory":
        return checks.inventory_check(order.items, available_stock(order.items))
    if check == "credit":
        from handlers.enrich_order import load_customer  # the customers table's reader

        return checks.credit_check(order.total_cents, load_customer(order.customer_id))
    return checks.shipping_quote(order)


@functools.cache
def _publisher() -> Publisher:
    return Publisher()


def check_and_publish(order: OrderPlaced) -> dict[str, Any]:
    """The choreography use case: run this function's check, publish CheckCompleted."""
    check = configured_check()
    completed = checks.check_completed(order, check, run(check, order))
    _publisher().publish([completed])
    return completed.to_detail()


@functools.cache
def _idempotency(check: CheckName) -> tuple[IdempotencyConfig, Callable[..., dict[str, Any]]]:
    """`check_and_publish` made idempotent on the OrderPlaced's eventId, per check (the
    check is in the key: its results must not answer another check's duplicates, even
    if the functions share a name prefix). Built on first use: Powertools is imported
    and the table name read then, not at cold start."""
    from eventkit import idempotency

    function = os.environ.get("AWS_LAMBDA_FUNCTION_NAME", "local")
    config = idempotency.config(idempotency.CONTRACT_EVENT_ID)
    once = idempotency.idempotent_function(
        data_keyword_argument="order",
        config=config,
        persistence_store=idempotency.persistence(),
        key_prefix=f"{function}.{__name__}.{check}",
    )(check_and_publish)
    return config, once


# --- entries -------------------------------------------------------------------------------


def handler(event: Mapping[str, Any], context: Any) -> dict[str, Any]:
    order = from_eventbridge(event, model=OrderPlaced)
    # A misconfigured function fails here, before any idempotency record is written.
    config, once = _idempotency(configured_check())
    if context is not None:
        config.register_lambda_context(context)
    return once(order=order)


def task(event: Mapping[str, Any], context: object) -> dict[str, Any]:
    """A Parallel branch: the saga state -> this check's result (camelCase)."""
    from handlers.saga_progress import order_from_state  # the saga state's reader

    order = order_from_state(event)
    return run(configured_check(), order).model_dump(mode="json")
