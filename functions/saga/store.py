"""The orders table as the order saga's store: each order's saga state, written once per
version.

`load` reads an order's saga state; `prepare` applies facts to it and returns the
conditional write (`SagaWrite`) that stores the result, which `commit` writes in ONE
transaction with a step's own items and the outbox rows of its events; `record` does
both, retrying (`retry_conflicts`) while the order changes concurrently.

Optimistic concurrency: the order item is written only if its `version` is still the one
read, so two facts applied concurrently are serialized (the loser re-reads and
re-applies), and the transition to COMPLETED / CANCELLED, with its event, happens once.

Orders table (`ORDERS_TABLE`, key `pk` S): `order#<orderId>` items as written by
`domain.orders.to_record` (order fields, `status`, `version`, `facts`, `appliedEventIds`,
`history`, amounts, failure), `request#<customerId>#<clientRequestId>` records (ids
escaped; written by `saga.placing`) and `import#<sha256>` checkpoints of bulk imports
(`handlers.import_orders`).
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final, TypeVar

from contracts import Event, OrderPlaced
from domain import orders
from domain.orders import SagaFact, SagaState, Transition
from eventcraft import clients, dynamodb, outbox
from eventcraft.settings import env

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.type_defs import TransactWriteItemTypeDef

ORDERS_TABLE_ENV: Final = "ORDERS_TABLE"
OUTBOX_TABLE_ENV: Final = "OUTBOX_TABLE"
MAX_ATTEMPTS: Final = 8  # optimistic-concurrency retries before giving up (then: retry later)

T = TypeVar("T")


class OrderNotFoundError(LookupError):
    """A saga event names an order that the orders table does not have."""


class ConcurrentUpdateError(RuntimeError):
    """The order kept changing under us: nothing was written. Transient: retry."""


def load(order_id: str, *, table: str | None = None) -> SagaState | None:
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

    state: SagaState
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
    the saga_progress handler records the step from its event)."""
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
        outbox.raise_cancelled(exc, items, n_business_items=len(items))


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
