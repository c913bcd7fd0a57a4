"""Orders: the place-order command, and each order's saga as a pure state machine.

Placing an order
    `PlaceOrderRequest` is what a client sends (camelCase JSON); `new_order` turns it into
    the `OrderPlaced` event and `new_saga` into the order's initial saga state. The
    client's `clientRequestId` makes the command idempotent (the adapter keeps one request
    record per customer and request id, `request_key`); `fingerprint` tells a retry of the
    same request from a reuse of the id for a different order. The request is checked
    strictly (unknown fields, numbers sent as strings or booleans, unknown currencies,
    invisible characters in ids and amounts beyond the contracts' bounds are refused) before
    any arithmetic.

The saga state machine
    The order's saga state (`SagaState`) changes only through `apply(state, fact)`, where
    a `SagaFact` is what a saga event says happened (`fact_from_event`), or what the
    orchestrator reports (`aborted_fact`). It is built for at-least-once, out-of-order
    delivery:

    - a fact is applied once: its id (the event's `eventId`) is remembered, a duplicate is
      a no-op (`Transition.duplicate`);
    - facts are accumulated, the status is DERIVED from all of them, so the order they
      arrive in does not matter: PaymentProcessed before InventoryReserved gives PAID,
      and the late InventoryReserved changes nothing;
    - progress: PLACED -> RESERVED -> PAID -> SHIPPED -> COMPLETED once the reservation,
      the payment and the shipment are all known (OrderCompleted is emitted then, once);
    - failure: the first failure fact (InventoryReservationFailed, PaymentFailed,
      ShippingFailed, or the orchestrator giving up on a step) moves the saga to
      CANCELLING until every compensation it needs is known (inventory released when
      something was reserved, payment refunded when something was charged), then to
      CANCELLED (OrderCancelled is emitted then, once). A compensation that arrives
      before its failure event (out of order) marks the saga CANCELLING with an
      inferred failure; the failure event, when it comes, names the step and lets it
      end (the orchestrator reports its failures with the compensations, `aborted_fact`);
    - COMPLETED and CANCELLED are final: later facts are recorded in the history but
      never change the status. A reservation or a charge that shows up after the saga
      failed asks for its compensation (`Transition.compensate`), so a late
      InventoryReserved releases the stock instead of resurrecting the order.

The adapter stores the state with a version and writes it conditionally on the version
it read (optimistic concurrency), so two facts applied concurrently are serialized and
each transition, with its event, happens exactly once.
"""

from __future__ import annotations

import hashlib
import json
import unicodedata
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Any, Final, Literal, get_args

from pydantic import AfterValidator, ConfigDict, Field, Strict, StringConstraints, model_validator

from contracts import (
    MAX_CENTS,
    MAX_QUANTITY,
    MAX_TEXT,
    ContractModel,
    Currency,
    Event,
    InventoryReleased,
    InventoryReservationFailed,
    InventoryReserved,
    OrderCancelled,
    OrderCompleted,
    OrderLine,
    OrderPlaced,
    OrderShipped,
    PaymentFailed,
    PaymentProcessed,
    PaymentRefunded,
    SagaStep,
    ShippingFailed,
    default_currency,
    utc_now,
)
from eventcraft.text import escape, is_invisible, truncate

# An order's lines become one stock update each in the inventory transaction, next to the
# reservation, its event and the saga record (DynamoDB allows 100 items per transaction).
MAX_LINES: Final = 50
MAX_REASON: Final = MAX_TEXT  # the contracts' limit of a reason
MAX_CLIENT_REQUEST_ID: Final = 512
# DynamoDB's limit of a partition key, in UTF-8 bytes (the request key holds two ids).
MAX_KEY_BYTES: Final = 2048

ORDER_KEY_PREFIX: Final = "order#"
REQUEST_KEY_PREFIX: Final = "request#"

STEPS: Final[tuple[SagaStep, ...]] = get_args(SagaStep)


def order_key(order_id: str) -> str:
    """The orders table key (`pk`) of an order's item."""
    return f"{ORDER_KEY_PREFIX}{order_id}"


def _key_part(text: str) -> str:
    # "%" first: an id holding "%23" must not read back as one holding "#".
    return text.replace("%", "%25").replace("#", "%23")


def request_key(customer_id: str, client_request_id: str) -> str:
    """The orders table key (`pk`) of a client request's record, scoped per customer (two
    customers may use the same request id): `request#<customer>#<request id>` with "%"
    and "#" of each id written %25 and %23, so no two (customer, request id) pairs share
    a key (unescaped, customer "a#b" with request "c" took the key of customer "a" with
    request "b#c"). Ids without "%" and "#" keep the key they always had."""
    return f"{REQUEST_KEY_PREFIX}{_key_part(customer_id)}#{_key_part(client_request_id)}"


def legacy_request_key(customer_id: str, client_request_id: str) -> str | None:
    """The key this request's record had before ids were escaped, when it differs from
    `request_key` (ids holding "%" or "#"); such a record is this request's only if it
    names this customer and request id."""
    legacy = f"{REQUEST_KEY_PREFIX}{customer_id}#{client_request_id}"
    return None if legacy == request_key(customer_id, client_request_id) else legacy


def clip(text: str, limit: int = MAX_REASON) -> str:
    """`text` stripped (empty: "unspecified") and cut to `limit` characters (the
    contracts limit reasons to MAX_TEXT)."""
    return truncate(text.strip() or "unspecified", limit)


# --- placing an order ------------------------------------------------------------------


def _printable_id(value: str) -> str:
    """An id a person can read back: no control, formatting (e.g. right-to-left override)
    or other invisible characters, no spaces around it."""
    for position, char in enumerate(value):
        if is_invisible(char) or (unicodedata.category(char) == "Zs" and char != " "):
            category = unicodedata.category(char)
            name = unicodedata.name(char, "a control character" if category == "Cc" else "unnamed")
            raise ValueError(
                f"holds {escape(char)} ({name}) at position {position}: an id may hold "
                "visible characters and plain spaces only"
            )
    if value != value.strip():
        raise ValueError("starts or ends with a space: send the id without them")
    return value


# What a request may send: strict JSON types (a number sent as "2" or true is refused,
# not converted) within the contracts' bounds, checked before any arithmetic.
RequestId = Annotated[
    str, StringConstraints(min_length=1, max_length=MAX_TEXT), AfterValidator(_printable_id)
]
ClientRequestId = Annotated[
    str,
    StringConstraints(min_length=1, max_length=MAX_CLIENT_REQUEST_ID),
    AfterValidator(_printable_id),
]
RequestQuantity = Annotated[int, Strict(), Field(gt=0, le=MAX_QUANTITY)]
RequestCents = Annotated[int, Strict(), Field(ge=0, le=MAX_CENTS)]


class RequestLine(ContractModel):
    """One line of a request: `sku`, `quantity` 1..MAX_QUANTITY, `unitPriceCents`
    0..MAX_CENTS (JSON integers). Unknown fields are refused, as on the request."""

    model_config = ConfigDict(extra="forbid")

    sku: RequestId
    quantity: RequestQuantity
    unit_price_cents: RequestCents

    def to_order_line(self) -> OrderLine:
        return OrderLine(
            sku=self.sku, quantity=self.quantity, unit_price_cents=self.unit_price_cents
        )


class PlaceOrderRequest(ContractModel):
    """A client's order (camelCase on the wire). Unknown fields are refused: a command
    with a misspelt field must fail loudly, not place a different order.

    client_request_id: chosen by the client, 1..512 characters; sending the same request
        again (same customer, same id) places nothing new and answers with the order
        placed the first time.
    customer_id, items[].sku: 1..256 characters. Ids hold visible characters and plain
        spaces only (no control or formatting characters, no spaces around them).
    items: 1..MAX_LINES lines, one per sku; quantity 1..MAX_QUANTITY and unitPriceCents
        0..MAX_CENTS, JSON integers (not strings, not booleans).
    currency: an ISO 4217 code (contracts.ISO_4217); default the stack's DEFAULT_CURRENCY.
    total_cents: optional; when given it must equal the sum of the lines. The sum is at
        most MAX_CENTS (5,000,000,000 minor units): EventBridge compares larger numbers
        wrongly, so a larger order must be split.
    """

    model_config = ConfigDict(extra="forbid")

    client_request_id: ClientRequestId
    customer_id: RequestId
    items: list[RequestLine] = Field(min_length=1, max_length=MAX_LINES)
    currency: Currency | None = None
    total_cents: RequestCents | None = None

    @model_validator(mode="after")
    def _lines_are_consistent(self) -> PlaceOrderRequest:
        seen: set[str] = set()
        for line in self.items:
            if line.sku in seen:
                raise ValueError(
                    f"sku {line.sku!r} is on more than one line: send one line per sku with "
                    "the total quantity"
                )
            seen.add(line.sku)
        total = line_total(self.items)
        if total > MAX_CENTS:
            raise ValueError(
                f"the order's total {total} (the sum of quantity * unitPriceCents) is over "
                f"the maximum of {MAX_CENTS} minor units per order: split the order"
            )
        if self.total_cents is not None and self.total_cents != total:
            raise ValueError(
                f"totalCents {self.total_cents} != sum of quantity * unitPriceCents "
                f"({total}): omit totalCents or send the right sum"
            )
        key_bytes = len(request_key(self.customer_id, self.client_request_id).encode())
        if key_bytes > MAX_KEY_BYTES:
            raise ValueError(
                f"customerId and clientRequestId together take {key_bytes} bytes of the "
                f"{MAX_KEY_BYTES} the request's key allows (UTF-8; each '#' or '%' counts "
                "3): use a shorter clientRequestId"
            )
        return self

    @property
    def order_lines(self) -> list[OrderLine]:
        return [line.to_order_line() for line in self.items]


def line_total(items: Sequence[OrderLine | RequestLine]) -> int:
    return sum(line.quantity * line.unit_price_cents for line in items)


def fingerprint(request: PlaceOrderRequest) -> str:
    """What identifies the order a request asks for (customer, lines, currency): equal
    for a retry of the request, different when its id is reused for another order."""
    content = {
        "customerId": request.customer_id,
        "items": [line.model_dump(mode="json") for line in request.items],
        "currency": request.currency or default_currency(),
    }
    return hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()


def new_order(
    request: PlaceOrderRequest, *, order_id: str, now: datetime | None = None
) -> OrderPlaced:
    """The OrderPlaced event of a new order (currency defaulted, total computed)."""
    return OrderPlaced(
        order_id=order_id,
        customer_id=request.customer_id,
        items=request.order_lines,
        total_cents=line_total(request.items),
        currency=request.currency or default_currency(),
        occurred_at=now or utc_now(),
    )


# --- the saga state machine ------------------------------------------------------------


class OrderStatus(StrEnum):
    PLACED = "PLACED"
    RESERVED = "RESERVED"
    PAID = "PAID"
    SHIPPED = "SHIPPED"
    COMPLETED = "COMPLETED"
    CANCELLING = "CANCELLING"
    CANCELLED = "CANCELLED"


FINAL: Final = frozenset({OrderStatus.COMPLETED, OrderStatus.CANCELLED})

FactKind = Literal[
    "reserved",
    "reservation_failed",
    "paid",
    "payment_failed",
    "shipped",
    "shipping_failed",
    "refunded",
    "released",
    "aborted",
]
Compensation = Literal["release_inventory", "refund_payment"]

# The facts the state keeps (the failures are kept as `failure`).
KEPT: Final = frozenset({"reserved", "paid", "shipped", "released", "refunded"})
FAILURES: Final[Mapping[str, SagaStep]] = {
    "reservation_failed": "inventory",
    "payment_failed": "payment",
    "shipping_failed": "shipping",
}
# Each step of the saga, the fact that completes it and the status it reaches.
PROGRESS: Final[tuple[tuple[SagaStep, str, OrderStatus], ...]] = (
    ("inventory", "reserved", OrderStatus.RESERVED),
    ("payment", "paid", OrderStatus.PAID),
    ("shipping", "shipped", OrderStatus.SHIPPED),
)


class UnknownSagaEventError(ValueError):
    """The event is not one of the saga's: it cannot change an order's saga state."""


@dataclass(frozen=True)
class SagaFact:
    """Something that happened to an order's saga.

    fact_id: the idempotency key (the event's eventId; the orchestrator's facts use a
        deterministic id so its retries are duplicates).
    name: what to show in the history (the event's detail-type).
    step / reason: for failures; reference: the reservation, payment, shipment or refund
        id; amount_cents: charged or refunded.
    """

    fact_id: str
    kind: FactKind
    name: str
    occurred_at: datetime
    step: SagaStep | None = None
    reason: str | None = None
    reference: str | None = None
    amount_cents: int | None = None
    carrier: str | None = None
    tracking_number: str | None = None


# What each saga event reports: the fact's kind and data.
_FACT_FIELDS: Final[Mapping[type[Event], Callable[[Any], dict[str, Any]]]] = {
    InventoryReserved: lambda e: {"kind": "reserved", "reference": e.reservation_id},
    InventoryReservationFailed: lambda e: {
        "kind": "reservation_failed",
        "step": "inventory",
        "reason": e.reason,
    },
    PaymentProcessed: lambda e: {
        "kind": "paid",
        "reference": e.payment_id,
        "amount_cents": e.amount_cents,
    },
    PaymentFailed: lambda e: {"kind": "payment_failed", "step": "payment", "reason": e.reason},
    OrderShipped: lambda e: {
        "kind": "shipped",
        "reference": e.shipment_id,
        "carrier": e.carrier,
        "tracking_number": e.tracking_number,
    },
    ShippingFailed: lambda e: {"kind": "shipping_failed", "step": "shipping", "reason": e.reason},
    PaymentRefunded: lambda e: {
        "kind": "refunded",
        "reference": e.refund_id,
        "amount_cents": e.amount_cents,
    },
    InventoryReleased: lambda e: {"kind": "released", "reference": e.reservation_id},
}
# The detail-types of the saga events (what the choreography's progress rule routes here).
SAGA_EVENT_TYPES: Final[tuple[str, ...]] = tuple(t.DETAIL_TYPE for t in _FACT_FIELDS)


def fact_from_event(event: Event) -> SagaFact:
    """The fact a saga event reports. Raises UnknownSagaEventError for other events."""
    build = _FACT_FIELDS.get(type(event))
    if build is None:
        raise UnknownSagaEventError(
            f"{event.DETAIL_TYPE} is not a saga event (the saga reads "
            f"{', '.join(SAGA_EVENT_TYPES)}): narrow the rule that routes it here"
        )
    return SagaFact(
        fact_id=event.event_id,
        name=event.DETAIL_TYPE,
        occurred_at=event.occurred_at,
        **build(event),
    )


def aborted_fact(
    order_id: str, step: SagaStep, reason: str, *, now: datetime | None = None
) -> SagaFact:
    """The orchestrator gave up on `step` (a business error or retries exhausted).

    One per order: its id is derived from the order, so each compensation of the same
    failed execution may report it and only the first counts.
    """
    return SagaFact(
        fact_id=f"{order_id}:aborted",
        kind="aborted",
        name="SagaStepFailed",
        occurred_at=now or utc_now(),
        step=step,
        reason=clip(reason),
    )


@dataclass(frozen=True)
class Failure:
    """Why the saga failed. `inferred`: only deduced from a compensation that arrived
    before the failure event (out of order); the failure event replaces it."""

    step: SagaStep
    reason: str
    inferred: bool = False


@dataclass(frozen=True)
class HistoryEntry:
    """One applied fact: what, when it happened, and the status it left the order in."""

    name: str
    fact_id: str
    occurred_at: str
    status: OrderStatus
    note: str | None = None


@dataclass(frozen=True)
class SagaState:
    """An order and the state of its saga. `version` counts the stored writes."""

    order_id: str
    customer_id: str
    items: tuple[OrderLine, ...]
    total_cents: int
    currency: str
    placed_at: str
    client_request_id: str | None = None
    status: OrderStatus = OrderStatus.PLACED
    version: int = 1
    facts: frozenset[str] = frozenset()
    failure: Failure | None = None
    reservation_id: str | None = None
    payment_id: str | None = None
    charged_cents: int = 0
    refunded_cents: int = 0
    refund_id: str | None = None
    shipment_id: str | None = None
    carrier: str | None = None
    tracking_number: str | None = None
    closed_at: str | None = None
    applied: tuple[str, ...] = ()
    history: tuple[HistoryEntry, ...] = ()

    @property
    def final(self) -> bool:
        return self.status in FINAL


@dataclass(frozen=True)
class Transition:
    """The result of applying a fact.

    state: the new state (the same object when `duplicate`).
    emit: OrderCompleted / OrderCancelled when the saga just ended (at most one, once).
    compensate: compensations to trigger now (a reservation or charge that showed up
        after the saga failed); the compensations are idempotent, so asking twice is safe.
    """

    state: SagaState
    duplicate: bool = False
    emit: tuple[Event, ...] = ()
    compensate: frozenset[Compensation] = field(default_factory=frozenset)


def new_saga(order: OrderPlaced, *, client_request_id: str | None = None) -> SagaState:
    """The saga state of a just placed order (version 1, history: OrderPlaced)."""
    placed_at = order.occurred_at.isoformat()
    return SagaState(
        order_id=order.order_id,
        customer_id=order.customer_id,
        items=tuple(order.items),
        total_cents=order.total_cents,
        currency=order.currency,
        placed_at=placed_at,
        client_request_id=client_request_id,
        applied=(order.event_id,),
        history=(HistoryEntry("OrderPlaced", order.event_id, placed_at, OrderStatus.PLACED),),
    )


def first_incomplete_step(facts: frozenset[str]) -> SagaStep:
    """The earliest step whose completing fact is missing (the one that failed). A
    compensation implies what it undoes: released -> reserved, refunded -> paid."""
    implied = set(facts)
    if "released" in facts:
        implied.add("reserved")
    if "refunded" in facts:
        implied |= {"reserved", "paid"}
    for step, kind, _ in PROGRESS:
        if kind not in implied:
            return step
    return "shipping"


def pending_compensations(failure: Failure, facts: frozenset[str]) -> list[Compensation]:
    """What must still be undone before a failed saga is CANCELLED.

    A payment or shipping failure implies the stock was reserved (the steps run in
    order), and a shipping failure that the payment was charged, even when the facts
    saying so have not arrived yet.
    """
    need_release = "reserved" in facts or failure.step in ("payment", "shipping")
    need_refund = "paid" in facts or failure.step == "shipping"
    pending: list[Compensation] = []
    if need_release and "released" not in facts:
        pending.append("release_inventory")
    if need_refund and "refunded" not in facts:
        pending.append("refund_payment")
    return pending


def _progress_status(facts: frozenset[str]) -> OrderStatus:
    status = OrderStatus.PLACED
    for _, kind, reached in PROGRESS:
        if kind in facts:
            status = reached
    return status


def _with_fact_data(state: SagaState, fact: SagaFact) -> SagaState:
    match fact.kind:
        case "reserved":
            return replace(state, reservation_id=fact.reference or state.reservation_id)
        case "paid":
            return replace(
                state,
                payment_id=fact.reference or state.payment_id,
                charged_cents=fact.amount_cents or 0,
            )
        case "refunded":
            return replace(
                state,
                refund_id=fact.reference or state.refund_id,
                refunded_cents=fact.amount_cents or 0,
            )
        case "shipped":
            return replace(
                state,
                shipment_id=fact.reference,
                carrier=fact.carrier,
                tracking_number=fact.tracking_number,
            )
    return state


def apply(state: SagaState, fact: SagaFact, *, now: datetime | None = None) -> Transition:
    """Apply `fact` to `state` (see the module doc). Pure: returns the new state, the
    events to emit and the compensations to trigger; the caller stores the state (at
    `state.version + 1`, conditionally on `state.version`) with the events."""
    if fact.fact_id in state.applied:
        return Transition(state, duplicate=True)
    at = now or utc_now()
    facts = state.facts | ({fact.kind} if fact.kind in KEPT else set())
    failure, note = _failure_after(state, fact, facts)
    compensate: set[Compensation] = set()
    emit: list[Event] = []
    status = state.status
    if state.final:
        if status is OrderStatus.CANCELLED:
            compensate = _late_compensations(fact, facts)
            if compensate:
                note = f"arrived after the order was cancelled: {', '.join(sorted(compensate))}"
    elif failure is not None:
        if state.failure is not None and not state.failure.inferred:
            compensate = _late_compensations(fact, facts)
        if failure.inferred or pending_compensations(failure, facts):
            # An inferred failure waits for its failure event, which names the step.
            status = OrderStatus.CANCELLING
        else:
            status = OrderStatus.CANCELLED
            emit.append(
                OrderCancelled(
                    order_id=state.order_id,
                    customer_id=state.customer_id,
                    reason=clip(f"{failure.step} failed: {failure.reason}"),
                    failed_step=failure.step,
                    occurred_at=at,
                )
            )
    elif all(kind in facts for _, kind, _ in PROGRESS):
        status = OrderStatus.COMPLETED
        emit.append(
            OrderCompleted(order_id=state.order_id, customer_id=state.customer_id, occurred_at=at)
        )
    else:
        status = _progress_status(facts)

    entry = HistoryEntry(fact.name, fact.fact_id, fact.occurred_at.isoformat(), status, note)
    new = replace(
        _with_fact_data(state, fact),
        facts=facts,
        status=status,
        failure=failure,
        version=state.version + 1,
        closed_at=at.isoformat() if emit else state.closed_at,
        applied=(*state.applied, fact.fact_id),
        history=(*state.history, entry),
    )
    return Transition(new, emit=tuple(emit), compensate=frozenset(compensate))


def _failure_after(
    state: SagaState, fact: SagaFact, facts: frozenset[str]
) -> tuple[Failure | None, str | None]:
    """The saga's failure once `fact` is known, and a note for the history."""
    failure, note = state.failure, None
    is_failure = fact.kind in FAILURES or fact.kind == "aborted"
    if state.final:
        if is_failure:
            note = f"ignored: the order was already {state.status.value.lower()}"
    elif is_failure:
        step = fact.step or FAILURES.get(fact.kind) or first_incomplete_step(facts)
        if failure is None or failure.inferred:
            failure = Failure(step, clip(fact.reason or f"{step} failed"))
        elif fact.kind != "aborted":
            note = f"the saga had already failed at step {failure.step}"
    elif failure is None and fact.kind in ("released", "refunded"):
        # A compensation before any failure: delivered ahead of its failure event.
        step = first_incomplete_step(facts)
        failure = Failure(step, f"{step} did not complete: compensated", inferred=True)
    return failure, note


def _late_compensations(fact: SagaFact, facts: frozenset[str]) -> set[Compensation]:
    """A reservation / charge reported after the saga failed must be undone."""
    late: set[Compensation] = set()
    if fact.kind == "reserved" and "released" not in facts:
        late.add("release_inventory")
    if fact.kind == "paid" and "refunded" not in facts:
        late.add("refund_payment")
    return late


# --- storage records and views (plain Python values; the adapter adds key and types) ---


def to_record(state: SagaState) -> dict[str, Any]:
    """The state as an item's attributes (camelCase, no None values, no floats)."""
    record: dict[str, Any] = {
        "orderId": state.order_id,
        "customerId": state.customer_id,
        "items": [line.model_dump(mode="json") for line in state.items],
        "totalCents": state.total_cents,
        "currency": state.currency,
        "placedAt": state.placed_at,
        "clientRequestId": state.client_request_id,
        "status": state.status.value,
        "version": state.version,
        "facts": sorted(state.facts),
        "failedStep": state.failure.step if state.failure else None,
        "failureReason": state.failure.reason if state.failure else None,
        "failureInferred": True if state.failure and state.failure.inferred else None,
        "reservationId": state.reservation_id,
        "paymentId": state.payment_id,
        "chargedCents": state.charged_cents,
        "refundedCents": state.refunded_cents,
        "refundId": state.refund_id,
        "shipmentId": state.shipment_id,
        "carrier": state.carrier,
        "trackingNumber": state.tracking_number,
        "closedAt": state.closed_at,
        "appliedEventIds": list(state.applied),
        "history": [
            {
                k: v
                for k, v in {
                    "event": h.name,
                    "eventId": h.fact_id,
                    "occurredAt": h.occurred_at,
                    "status": h.status.value,
                    "note": h.note,
                }.items()
                if v is not None
            }
            for h in state.history
        ],
    }
    return {k: v for k, v in record.items() if v is not None}


class CorruptRecordError(ValueError):
    """A stored order item does not have the shape `to_record` writes."""


def _int(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int | Decimal):
        raise CorruptRecordError(f"expected a number, got {value!r}")
    return int(value)


def from_record(record: Mapping[str, Any]) -> SagaState:
    """The state stored by `to_record` (numbers may be Decimal, as boto3 reads them)."""
    try:
        failure = (
            Failure(
                record["failedStep"],
                record.get("failureReason") or "unspecified",
                inferred=bool(record.get("failureInferred")),
            )
            if record.get("failedStep")
            else None
        )
        return SagaState(
            order_id=record["orderId"],
            customer_id=record["customerId"],
            items=tuple(OrderLine.model_validate(line) for line in record["items"]),
            total_cents=_int(record["totalCents"]),
            currency=record["currency"],
            placed_at=record["placedAt"],
            client_request_id=record.get("clientRequestId"),
            status=OrderStatus(record["status"]),
            version=_int(record["version"]),
            facts=frozenset(record.get("facts", ())),
            failure=failure,
            reservation_id=record.get("reservationId"),
            payment_id=record.get("paymentId"),
            charged_cents=_int(record.get("chargedCents", 0)),
            refunded_cents=_int(record.get("refundedCents", 0)),
            refund_id=record.get("refundId"),
            shipment_id=record.get("shipmentId"),
            carrier=record.get("carrier"),
            tracking_number=record.get("trackingNumber"),
            closed_at=record.get("closedAt"),
            applied=tuple(record.get("appliedEventIds", ())),
            history=tuple(
                HistoryEntry(
                    h["event"],
                    h["eventId"],
                    h["occurredAt"],
                    OrderStatus(h["status"]),
                    h.get("note"),
                )
                for h in record.get("history", ())
            ),
        )
    except (KeyError, ValueError, TypeError) as exc:
        raise CorruptRecordError(
            f"order item {record.get('orderId', '?')} is not a saga record ({exc!r}): it was "
            "written by other code; fix or delete the item"
        ) from exc


def view(state: SagaState) -> dict[str, Any]:
    """What the order status query answers (JSON-ready, camelCase)."""
    return {
        "orderId": state.order_id,
        "status": state.status.value,
        "final": state.final,
        "customerId": state.customer_id,
        "items": [line.model_dump(mode="json") for line in state.items],
        "totalCents": state.total_cents,
        "currency": state.currency,
        "chargedCents": state.charged_cents,
        "refundedCents": state.refunded_cents,
        "failedStep": state.failure.step if state.failure else None,
        "failureReason": state.failure.reason if state.failure else None,
        "reservationId": state.reservation_id,
        "paymentId": state.payment_id,
        "shipment": (
            {
                "shipmentId": state.shipment_id,
                "carrier": state.carrier,
                "trackingNumber": state.tracking_number,
            }
            if state.shipment_id
            else None
        ),
        "placedAt": state.placed_at,
        "closedAt": state.closed_at,
        "history": [
            {
                "event": h.name,
                "eventId": h.fact_id,
                "occurredAt": h.occurred_at,
                "status": h.status.value,
                **({"note": h.note} if h.note else {}),
            }
            for h in state.history
        ],
    }
