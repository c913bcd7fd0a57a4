"""The fork of the fork/join: one check of an order (inventory, credit or shipping quote).

One function per check, each with its own entry (the check is in the handler name, not
in a setting, so no function can run the wrong check; ENTRIES maps entry -> check):
- `inventory_handler`, `credit_handler`, `shipping_quote_handler` (choreography):
  OrderPlaced (EventBridge rule target) -> CheckCompleted on EVENT_BUS_NAME
  (`aggregate_checks` joins them);
- `inventory_task`, `credit_task`, `shipping_quote_task` (orchestration: the branches
  "inventory", "credit", "shippingQuote" of the Step Functions Parallel state of
  `pulumi_eventcraft.saga.parallel_checks`): the saga state (carrying the OrderPlaced) -> the
  check's result {"passed", "reason", "quoteCents"}.
A check that does not pass is a result, not an error: the join decides.

What each check reads:
- inventory: the stock items `sku#<sku>` {available} of INVENTORY_TABLE (key `pk`, the
  layout of `handlers.reserve_inventory`), one BatchGetItem; reserves nothing;
- credit: the customer's `creditLimitCents` in CUSTOMERS_TABLE (key `customerId`,
  `domain.enrichment`'s layout);
- shippingQuote: nothing (a rate table in `domain.checks`).

Idempotency of the `*_handler` entries: Powertools, keyed on the OrderPlaced's eventId
(the key includes the check, so the checks never answer each other's duplicates). The
effect is a publish, and the stock or the limit may change between two deliveries: the
first result is stored and replayed, so one CheckCompleted goes out with one content; its
eventId is derived from the OrderPlaced's, and the join keeps a check's first result
only, so even a duplicate that slipped through would change nothing. The `*_task` entries have no
effect beyond their answer; Step Functions keeps it.

ACCESS is the union for the module; CHECK_ACCESS is what each check's function needs
(grant that one per function for least privilege; a function with only `*_task` entries
needs only the table, not EVENT_BUS_NAME or IDEMPOTENCY_TABLE).
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Final

from contracts import CheckName, CheckResult, OrderLine, OrderPlaced
from domain import checks
from domain.inventory import stock_key
from eventcraft import clients
from eventcraft.envelopes import from_eventbridge
from eventcraft.publisher import Publisher
from eventcraft.settings import env

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
# The `*_handler` entries only; the `*_task` entries need neither.
_PUBLISH: Final = ("EVENT_BUS_NAME", "IDEMPOTENCY_TABLE")
CHECK_ACCESS: Final[Mapping[CheckName, dict[str, frozenset[str]]]] = {
    "inventory": {name: ACCESS[name] for name in ("INVENTORY_TABLE", *_PUBLISH)},
    "credit": {name: ACCESS[name] for name in ("CUSTOMERS_TABLE", *_PUBLISH)},
    "shippingQuote": {name: ACCESS[name] for name in _PUBLISH},
}
INVENTORY_TABLE_ENV: Final = "INVENTORY_TABLE"
MAX_BATCH_GET: Final = 100  # keys per BatchGetItem

_ENV_HINT: Final = (
    "the function's component must set it (CHECK_ACCESS in handlers.run_check lists what "
    "each check's role needs)"
)


# --- adapters ------------------------------------------------------------------------------


def available_stock(lines: Sequence[OrderLine]) -> dict[str, int]:
    """sku -> units available now (absent: no stock item)."""
    table = env(INVENTORY_TABLE_ENV, _ENV_HINT)
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
        from saga.customers import load_customer

        return checks.credit_check(order.total_cents, load_customer(order.customer_id))
    return checks.shipping_quote(order)


@functools.cache
def _publisher() -> Publisher:
    return Publisher()


def check_and_publish(order: OrderPlaced, check: CheckName) -> dict[str, Any]:
    """The choreography use case: run `check`, publish its CheckCompleted."""
    completed = checks.check_completed(order, check, run(check, order))
    _publisher().publish([completed])
    return completed.to_detail()


@functools.cache
def _idempotency(check: CheckName) -> tuple[IdempotencyConfig, Callable[..., dict[str, Any]]]:
    """`check_and_publish` made idempotent on the OrderPlaced's eventId, per check (the
    check is in the key: one check's result must never answer another check's
    duplicate). Built on first use: Powertools is imported and the table name read then,
    not at cold start."""
    from eventcraft import idempotency

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


def _handle(check: CheckName, event: Mapping[str, Any], context: Any) -> dict[str, Any]:
    order = from_eventbridge(event, model=OrderPlaced)
    config, once = _idempotency(check)
    if context is not None:
        config.register_lambda_context(context)
    return once(order=order, check=check)


def _task(check: CheckName, event: Mapping[str, Any]) -> dict[str, Any]:
    from saga.sfn_state import order_from_state

    return run(check, order_from_state(event)).model_dump(mode="json")


def inventory_handler(event: Mapping[str, Any], context: Any) -> dict[str, Any]:
    return _handle("inventory", event, context)


def credit_handler(event: Mapping[str, Any], context: Any) -> dict[str, Any]:
    return _handle("credit", event, context)


def shipping_quote_handler(event: Mapping[str, Any], context: Any) -> dict[str, Any]:
    return _handle("shippingQuote", event, context)


def inventory_task(event: Mapping[str, Any], context: object) -> dict[str, Any]:
    return _task("inventory", event)


def credit_task(event: Mapping[str, Any], context: object) -> dict[str, Any]:
    return _task("credit", event)


def shipping_quote_task(event: Mapping[str, Any], context: object) -> dict[str, Any]:
    return _task("shippingQuote", event)


# entry name -> the check it runs (for wiring: handler "handlers.run_check.<entry>").
ENTRIES: Final[Mapping[str, CheckName]] = {
    "inventory_handler": "inventory",
    "credit_handler": "credit",
    "shipping_quote_handler": "shippingQuote",
    "inventory_task": "inventory",
    "credit_task": "credit",
    "shipping_quote_task": "shippingQuote",
}
