"""saga_progress: keeps each order's saga state in the orders table from the saga events.

Choreography entry `handler(event, context)`: an EventBridge event (Lambda target) or an
SQS batch of them (rule -> queue -> function; partial batch failures). It reads the saga
events (InventoryReserved, InventoryReservationFailed, PaymentProcessed, PaymentFailed,
OrderShipped, ShippingFailed, PaymentRefunded, InventoryReleased), applies each to the
order's saga state machine (`domain.orders`) and stores the result; the transition that
ends the saga writes OrderCompleted or OrderCancelled to the outbox in the same
transaction. A reservation or charge that arrives after the saga failed is undone here
(release / refund, both idempotent).

Idempotency: a conditional write, not Powertools. The order item remembers the ids of
the events applied to it, and is written only if its `version` is still the one read
(optimistic concurrency): a duplicate changes nothing, two events for one order applied
concurrently are serialized (the loser re-reads and re-applies), and the transition to
COMPLETED / CANCELLED, with its event, happens exactly once. A Powertools record keyed on
the event id would add a table and two writes per event, and could not serialize two
*different* events racing on one order, which the version does.

This module is also the orders table's saga adapter for the orchestration tasks (they
record their step in the same transaction as the step itself): `prepare` /
`maybe_prepare`, `commit`, `record`, `retry_conflicts`, and `compensation_task` (the
compensation tasks of release_inventory and refund_payment).

Orders table (`ORDERS_TABLE`, key `pk` S): `order#<orderId>` items as written by
`domain.orders.to_record` (order fields, `status`, `version`, `facts`, `appliedEventIds`,
`history`, amounts, failure) and `request#<customerId>#<clientRequestId>` records
(written by place_order).
"""

from __future__ import annotations

import json
import logging
import random
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final, Protocol, TypeVar

from pydantic import ValidationError

from contracts import ContractError, Event, OrderPlaced, parse_detail
from domain import orders
from domain.orders import OrderSaga, SagaFact, Transition
from eventkit import clients, dynamodb, envelopes, outbox
from eventkit.settings import ConfigurationError
from eventkit.settings import env as _env

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
    from mypy_boto3_dynamodb.type_defs import TransactWriteItemTypeDef

ACCESS: dict[str, frozenset[str]] = {
    # GetItem: read the order; PutItem: the conditional write of its new state.
    "ORDERS_TABLE": frozenset({"dynamodb:GetItem", "dynamodb:PutItem"}),
    # The OrderCompleted / OrderCancelled outbox row, in the same transaction.
    "OUTBOX_TABLE": frozenset({"dynamodb:PutItem"}),
    # Late compensations (handlers.release_inventory.release / refund_payment.refund).
    "INVENTORY_TABLE": frozenset({"dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem"}),
    "PAYMENTS_TABLE": frozenset({"dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem"}),
}

ORDERS_TABLE_ENV: Final = "ORDERS_TABLE"
OUTBOX_TABLE_ENV: Final = "OUTBOX_TABLE"
MAX_ATTEMPTS: Final = 8  # optimistic-concurrency retries before giving up (then: retry later)

logger = logging.getLogger(__name__)
T = TypeVar("T")


class OrderNotFoundError(LookupError):
    """A saga event names an order that the orders table does not have."""


class ConcurrentUpdateError(RuntimeError):
    """The order kept changing under us: nothing was written. Transient: retry."""


def env(name: str) -> str:
    """The value of environment variable `name`; ConfigurationError naming it if unset."""
    return _env(
        name,
        "the function's component must set it (the handler module's ACCESS lists what the "
        "role needs on it)",
        error=ConfigurationError,
    )


# --- the orders table's saga adapter -------------------------------------------------


def load(order_id: str, *, table: str | None = None) -> OrderSaga | None:
    """The order's saga state (strongly consistent read), or None if there is no order."""
    record = dynamodb.get(table or env(ORDERS_TABLE_ENV), {"pk": orders.order_key(order_id)})
    return None if record is None else orders.from_record(record)


def customer_of(order_id: str, *known: str | None) -> str:
    """The order's customer, for the events a step emits: the first of `known` that is
    set (the triggering event's, the saga state's order, a record of the step), else the
    order's record (only for an event read from before events carried customerId)."""
    for customer_id in known:
        if customer_id:
            return customer_id
    state = load(order_id)
    if state is None:
        raise OrderNotFoundError(
            f"no order {order_id} in the orders table and no customerId on the event: cannot "
            "know the customer of the events to emit; it is retried, then dead-lettered"
        )
    return state.customer_id


@dataclass(frozen=True)
class SagaWrite:
    """The orders-table part of a transaction recording facts.

    items: the conditional Put of the new state ([] when every fact was a duplicate).
    events: OrderCompleted / OrderCancelled to write to the outbox with it.
    """

    state: OrderSaga
    transitions: list[Transition]
    items: list[TransactWriteItemTypeDef] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)

    @property
    def compensations(self) -> frozenset[orders.Compensation]:
        return frozenset(c for t in self.transitions for c in t.compensate)


def prepare(
    order_id: str, facts: Sequence[SagaFact], *, order: OrderPlaced | None = None
) -> SagaWrite:
    """Read the order, apply `facts`, and return the write that stores the result.

    order: the order, to start its saga state if the table has none (orchestration: the
        execution's input carries the order); without it a missing order raises
        OrderNotFoundError.
    """
    table = env(ORDERS_TABLE_ENV)
    state = load(order_id, table=table)
    expected: int | None = None
    if state is None:
        if order is None:
            raise OrderNotFoundError(
                f"no order {order_id} in {table} ({ORDERS_TABLE_ENV}): the event names an order "
                "that was never placed here; it is retried, then dead-lettered"
            )
        state = orders.new_saga(order)
    else:
        expected = state.version
    transitions: list[Transition] = []
    for fact in facts:
        transition = orders.apply(state, fact)
        transitions.append(transition)
        state = transition.state
    if expected is not None and all(t.duplicate for t in transitions):
        return SagaWrite(state, transitions)
    if expected is None:
        condition, names, values = "attribute_not_exists(pk)", None, None
    else:
        condition, names, values = "#v = :v", {"#v": "version"}, {":v": expected}
    put = outbox.put(
        table,
        {"pk": orders.order_key(order_id), **orders.to_record(state)},
        condition=condition,
        names=names,
        values=values,
    )
    events = [event for t in transitions for event in t.emit]
    return SagaWrite(state, transitions, [put], events)


def maybe_prepare(
    order_id: str,
    facts: Sequence[SagaFact],
    *,
    record_saga: bool,
    order: OrderPlaced | None = None,
) -> SagaWrite | None:
    """`prepare(order_id, facts, order=order)` when the step records the saga itself
    (`record_saga`: orchestration) and there are facts; else None (choreography:
    saga_progress records the step from its event)."""
    if not record_saga or not facts:
        return None
    return prepare(order_id, facts, order=order)


class SagaConflictError(Exception):
    """The order's saga record changed since it was read: prepare again and retry."""


def commit(
    items: Sequence[TransactWriteItemTypeDef],
    events: Sequence[Event],
    saga: SagaWrite | None = None,
) -> None:
    """Write `items` + the saga's items, with the outbox rows of `events` + the saga's
    events, in ONE transaction (a lone Put without events: one conditional PutItem).

    Raises outbox.ConditionFailedError when a condition of `items` failed (indices into
    `items`), SagaConflictError when only the saga record's did, and
    outbox.TransactionConflictError on a concurrent transaction.
    """
    all_items = [*items, *(saga.items if saga else [])]
    all_events = [*events, *(saga.events if saga else [])]
    if not all_items and not all_events:
        return
    try:
        if all_events:
            outbox.write(all_items, all_events, outbox_table=env(OUTBOX_TABLE_ENV))
        elif len(all_items) == 1 and "Put" in all_items[0]:
            _put(all_items[0])
        else:
            _transact(all_items)
    except outbox.ConditionFailedError as exc:
        own = [(i, table) for i, table in exc.failed if i < len(items)]
        if own:
            raise outbox.ConditionFailedError(own, len(items)) from exc
        if any(i < len(all_items) for i, _ in exc.failed):
            raise SagaConflictError("the order's saga record changed since it was read") from exc
        raise  # an outbox row: the event id was already written (ids are fresh: a bug)


def _put(item: TransactWriteItemTypeDef) -> None:
    ddb = clients.client("dynamodb")
    put: Any = item["Put"]
    try:
        ddb.put_item(**put)
    except ddb.exceptions.ConditionalCheckFailedException as exc:
        raise outbox.ConditionFailedError([(0, put["TableName"])], 1) from exc


def _transact(items: Sequence[TransactWriteItemTypeDef]) -> None:
    """TransactWriteItems without outbox rows, its errors classified as outbox.write's."""
    ddb = clients.client("dynamodb")
    try:
        ddb.transact_write_items(TransactItems=list(items))
    except ddb.exceptions.TransactionCanceledException as exc:
        codes = [r.get("Code", "None") for r in exc.response.get("CancellationReasons", [])]
        failed = [(i, "?") for i, code in enumerate(codes) if code == "ConditionalCheckFailed"]
        if failed:
            raise outbox.ConditionFailedError(failed, len(items)) from exc
        if "TransactionConflict" in codes:
            raise outbox.TransactionConflictError(
                "another transaction wrote the same items at the same time; retry"
            ) from exc
        raise


def retry_conflicts(attempt: Callable[[], T], *, what: str) -> T:
    """Run `attempt` again (with jittered backoff) while it raises SagaConflictError or
    outbox.TransactionConflictError; ConcurrentUpdateError after MAX_ATTEMPTS."""
    for n in range(1, MAX_ATTEMPTS + 1):
        try:
            return attempt()
        except (SagaConflictError, outbox.TransactionConflictError) as exc:
            if n == MAX_ATTEMPTS:
                raise ConcurrentUpdateError(
                    f"{what}: still conflicting after {MAX_ATTEMPTS} attempts ({exc}); nothing "
                    "was written: retry the invocation"
                ) from exc
            time.sleep(random.uniform(0, min(0.5, 0.01 * 2**n)))  # noqa: S311 (jitter)
    raise AssertionError("unreachable")


def record(
    order_id: str, facts: Sequence[SagaFact], *, order: OrderPlaced | None = None
) -> SagaWrite:
    """Apply `facts` to the order's saga and store it (retrying concurrent updates)."""

    def attempt() -> SagaWrite:
        saga = prepare(order_id, facts, order=order)
        if saga.items:
            commit([], [], saga)
        return saga

    return retry_conflicts(attempt, what=f"recording {len(facts)} fact(s) of order {order_id}")


# --- orchestration: the Step Functions saga's state ------------------------------------

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


def record_outcome(event: Mapping[str, Any], context: Any) -> dict[str, Any]:
    """Step Functions task: record the saga's outcome from its state (a caught `$.error`
    marks the failed step; compensations already recorded are kept) and return the
    order's status. Idempotent: the failure fact has one id per order.

    The step tasks record their own facts; this is for a failure no task reported (a
    first step that exhausted its retries), as a final state of the failure path.
    """
    order = order_from_state(event)
    fact = aborted_from_state(event, order.order_id)
    saga = record(order.order_id, [fact] if fact else [], order=order)
    return {
        "orderId": order.order_id,
        "status": saga.state.status.value,
        "final": saga.state.final,
    }


class _Outcome(Protocol):
    def to_result(self) -> dict[str, Any]: ...


class Compensation(Protocol):
    """A compensation's application function: `release_inventory.release`,
    `refund_payment.refund`."""

    def __call__(
        self,
        order_id: str,
        *,
        reason: str,
        record_saga: bool = ...,
        order: OrderPlaced | None = ...,
        facts: Sequence[SagaFact] = ...,
    ) -> _Outcome: ...


def compensation_task(state: Mapping[str, Any], compensate: Compensation) -> dict[str, Any]:
    """A Step Functions compensation task: `compensate` the order of the saga `state`,
    recording the caught `$.error` (as the failed step's fact) and the compensation in the
    order's saga state in the same transaction; its result. Never fails for "nothing to
    undo"."""
    order = order_from_state(state)
    aborted = aborted_from_state(state, order.order_id)
    reason = aborted.reason if aborted and aborted.reason else "saga compensation"
    outcome = compensate(
        order.order_id,
        reason=reason,
        record_saga=True,
        order=order,
        facts=[aborted] if aborted else [],
    )
    return outcome.to_result()


# --- the choreography handler ---------------------------------------------------------


def progress(event: Event) -> dict[str, Any]:
    """Apply one saga event to its order; trigger the compensations it calls for."""
    fact = orders.fact_from_event(event)
    order_id = str(getattr(event, "order_id", ""))
    saga = record(order_id, [fact])
    (transition,) = saga.transitions
    _compensate(
        order_id,
        saga.compensations,
        reason=f"late {event.DETAIL_TYPE}",
        customer_id=saga.state.customer_id,
    )
    return {
        "orderId": order_id,
        "status": saga.state.status.value,
        "duplicate": transition.duplicate,
        "emitted": [e.DETAIL_TYPE for e in transition.emit],
        "compensated": sorted(saga.compensations),
    }


def _compensate(
    order_id: str, compensations: frozenset[str], *, reason: str, customer_id: str
) -> None:
    """Undo a reservation / charge that showed up after the saga failed."""
    if "release_inventory" in compensations:
        from handlers.release_inventory import release  # lazy: only on this rare path

        logger.warning("releasing the late reservation of cancelled order %s", order_id)
        release(order_id, reason=reason, customer_id=customer_id)
    if "refund_payment" in compensations:
        from handlers.refund_payment import refund

        logger.warning("refunding the late charge of cancelled order %s", order_id)
        refund(order_id, reason=reason, customer_id=customer_id)


def handler(event: Mapping[str, Any], context: Any) -> PartialItemFailureResponse | dict[str, Any]:
    """An EventBridge saga event, or an SQS batch of them (partial batch response)."""
    return envelopes.dispatch(event, context, progress)
