"""The fork/join checks of an order: inventory availability, credit, shipping quote.

Pure: no boto3. The handlers read stock and customers, call these, and record / publish.
A check that does not pass is a result (`passed: false` with a reason), never an error:
the join needs every branch's answer to decide.

Join records (eventcraft.aggregation, one item per order, `joinId` = orderId): each check's
outcome is "PASSED" or "FAILED" and its data {"reason", "quoteCents", "occurredAt",
"customerId"}: the join keeps the customer each CheckCompleted carried, for the
AllChecksComplete it emits.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, Final

from contracts import (
    CHECKS,
    AllChecksComplete,
    CheckCompleted,
    CheckName,
    CheckResult,
    ContractError,
    OrderLine,
    OrderPlaced,
    utc_now,
)
from domain.enrichment import Customer, derived_event_id
from eventcraft.aggregation import (
    CheckResult as JoinResult,
)
from eventcraft.aggregation import (
    JoinState,
    completion_event_id,
)

PASSED: Final = "PASSED"
FAILED: Final = "FAILED"

# Shipping quote: a parcel rate (minor units of the order's currency).
SHIPPING_BASE_CENTS: Final = 499
SHIPPING_PER_EXTRA_UNIT_CENTS: Final = 150
FREE_SHIPPING_FROM_CENTS: Final = 10_000
MAX_UNITS_PER_SHIPMENT: Final = 500


def inventory_check(lines: Sequence[OrderLine], available: Mapping[str, int]) -> CheckResult:
    """Passed if every line's quantity is in stock now (a SKU without stock item has none).
    Reserves nothing: the saga's reservation decides for real."""
    short = [line.sku for line in lines if available.get(line.sku, 0) < line.quantity]
    if short:
        return CheckResult(passed=False, reason=f"insufficient stock for {', '.join(short)}")
    return CheckResult(passed=True)


def credit_check(total_cents: int, customer: Customer | None) -> CheckResult:
    """Passed if the customer is known, has a credit limit, and the order fits in it."""
    if customer is None:
        return CheckResult(passed=False, reason="unknown customer: no credit on record")
    if customer.credit_limit_cents is None:
        return CheckResult(passed=False, reason="no credit limit on record for the customer")
    if total_cents > customer.credit_limit_cents:
        return CheckResult(
            passed=False,
            reason=f"total {total_cents} exceeds the credit limit {customer.credit_limit_cents}",
        )
    return CheckResult(passed=True)


def shipping_quote(order: OrderPlaced) -> CheckResult:
    """A parcel quote: base rate plus a rate per unit after the first, free from
    FREE_SHIPPING_FROM_CENTS; failed above MAX_UNITS_PER_SHIPMENT units."""
    units = sum(line.quantity for line in order.items)
    if units > MAX_UNITS_PER_SHIPMENT:
        return CheckResult(
            passed=False,
            reason=f"{units} units exceed one shipment's {MAX_UNITS_PER_SHIPMENT}: split the order",
        )
    if order.total_cents >= FREE_SHIPPING_FROM_CENTS:
        return CheckResult(passed=True, quote_cents=0)
    return CheckResult(
        passed=True,
        quote_cents=SHIPPING_BASE_CENTS + SHIPPING_PER_EXTRA_UNIT_CENTS * (units - 1),
    )


def check_completed(
    order: OrderPlaced, check: CheckName, result: CheckResult, *, now: datetime | None = None
) -> CheckCompleted:
    """The CheckCompleted of `check` for `order` (its id derived from the OrderPlaced's)."""
    return CheckCompleted(
        event_id=derived_event_id(order.event_id, f"{CheckCompleted.DETAIL_TYPE}/{check}"),
        occurred_at=now or utc_now(),
        order_id=order.order_id,
        customer_id=order.customer_id,
        check=check,
        result=result,
    )


def join_result(event: CheckCompleted) -> JoinResult:
    """A CheckCompleted as the join records it."""
    return JoinResult(
        name=event.check,
        outcome=PASSED if event.result.passed else FAILED,
        data={
            "reason": event.result.reason,
            "quoteCents": event.result.quote_cents,
            "occurredAt": event.occurred_at.isoformat(),
            "customerId": event.customer_id,
        },
    )


def _result(recorded: JoinResult) -> CheckResult:
    return CheckResult(
        passed=recorded.outcome == PASSED,
        reason=recorded.data.get("reason"),
        quote_cents=recorded.data.get("quoteCents"),
    )


def all_checks_complete(state: JoinState) -> AllChecksComplete:
    """The join's AllChecksComplete: the same event (id, time, content) every time it is
    built from the same join, so a re-emission after a takeover is a duplicate."""
    times = [
        datetime.fromisoformat(str(check.data["occurredAt"]))
        for check in state.checks.values()
        if check.data.get("occurredAt")
    ]
    return AllChecksComplete(
        event_id=str(uuid.uuid5(uuid.NAMESPACE_URL, completion_event_id(state))),
        occurred_at=max(times) if times else utc_now(),
        order_id=state.join_id,
        customer_id=join_customer(state),
        inventory=_result(state.checks["inventory"]),
        credit=_result(state.checks["credit"]),
        shipping_quote=_result(state.checks["shippingQuote"]),
    )


class MissingCheckResultError(ValueError):
    """The Parallel state's output lacks a branch's result. Not retryable."""


class UnknownJoinCustomerError(ContractError):
    """No recorded check of a join carries the order's customer (all three were published
    before CheckCompleted carried customerId). Not retryable."""


def join_customer(state: JoinState) -> str:
    """The customer the join's checks carried (they all name the order's customer)."""
    for name in sorted(state.checks):
        customer_id = state.checks[name].data.get("customerId")
        if customer_id:
            return str(customer_id)
    raise UnknownJoinCustomerError(
        f"join {state.join_id}: no recorded check carries a customerId (published before "
        "CheckCompleted had one), so AllChecksComplete cannot name the customer"
    )


def combine(order_id: str, customer_id: str, results: Mapping[str, Any]) -> AllChecksComplete:
    """The join of a Step Functions Parallel state: `results` maps each check name to the
    result its branch returned ({"passed", "reason", "quoteCents"})."""
    missing = [name for name in CHECKS if not isinstance(results.get(name), Mapping)]
    if missing:
        raise MissingCheckResultError(
            f"order {order_id}: no result for check(s) {', '.join(missing)} in $.checks: the "
            "Parallel state must have one branch per check, named after it "
            f"({', '.join(CHECKS)})"
        )
    return AllChecksComplete(
        event_id=derived_event_id(order_id, AllChecksComplete.DETAIL_TYPE),
        order_id=order_id,
        customer_id=customer_id,
        inventory=CheckResult.model_validate(results["inventory"]),
        credit=CheckResult.model_validate(results["credit"]),
        shipping_quote=CheckResult.model_validate(results["shippingQuote"]),
    )
