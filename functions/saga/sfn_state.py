"""Reading a Step Functions saga execution's state (the input every task receives).

The execution's input is the OrderPlaced EventBridge event (a rule started it),
`{"order": <detail>}` or the detail itself; the tasks add `results.<step>`, `error`
(a caught error: {"Error", "Cause"}) and `compensations` beside it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Final

from pydantic import ValidationError

from contracts import ContractError, OrderPlaced, parse_detail
from domain import orders
from domain.orders import SagaFact

# What each step's task returns (its result, under `$.results.<step name>`) contains.
_STEP_RESULTS: Final[tuple[tuple[orders.SagaStep, str], ...]] = (
    ("inventory", "reservationId"),
    ("payment", "paymentId"),
    ("shipping", "shipmentId"),
)


class InvalidSagaInputError(ValueError):
    """A task's input is not a saga state carrying an OrderPlaced order. Not retryable:
    fix what starts the executions."""


def order_from_state(state: Mapping[str, Any]) -> OrderPlaced:
    """The order of a saga execution's state. The execution's input may be the OrderPlaced
    EventBridge event (a rule started it), `{"order": <detail>}` or the detail itself;
    the tasks add `results`, `error`, `compensations` beside it."""
    detail: Any = state
    if isinstance(state.get("detail"), Mapping):
        detail = state["detail"]
    elif isinstance(state.get("order"), Mapping):
        detail = state["order"]
    try:
        order = parse_detail(OrderPlaced.DETAIL_TYPE, detail)
    except (ValidationError, ContractError) as exc:
        raise InvalidSagaInputError(
            f"the saga state carries no valid OrderPlaced ({exc}): start executions with the "
            "OrderPlaced event (or {'order': <its detail>}) as input"
        ) from exc
    if not isinstance(order, OrderPlaced):  # pragma: no cover (the registry maps it)
        raise InvalidSagaInputError("OrderPlaced parsed as another model")
    return order


def failed_step(state: Mapping[str, Any]) -> orders.SagaStep:
    """The first step without a result in `$.results` (the one that failed)."""
    results = state.get("results")
    done = {
        step
        for value in (results.values() if isinstance(results, Mapping) else ())
        if isinstance(value, Mapping)
        for step, key in _STEP_RESULTS
        if key in value
    }
    return next((step for step, _ in _STEP_RESULTS if step not in done), "shipping")


def error_reason(error: Mapping[str, Any]) -> str:
    """`Error: message` of a caught error (`$.error`: {"Error", "Cause"}; a Lambda's Cause
    is the JSON of its errorMessage / errorType)."""
    name = str(error.get("Error") or "Error")
    cause = str(error.get("Cause") or "")
    message = cause
    try:
        parsed = json.loads(cause)
    except ValueError:
        parsed = None
    if isinstance(parsed, Mapping) and parsed.get("errorMessage"):
        message = str(parsed["errorMessage"])
    return orders.clip(f"{name}: {message}" if message else name)


def aborted_from_state(state: Mapping[str, Any], order_id: str) -> SagaFact | None:
    """The orchestrator's "step X failed" fact when the state carries a caught error."""
    error = state.get("error")
    if not isinstance(error, Mapping):
        return None
    return orders.aborted_fact(order_id, failed_step(state), error_reason(error))
