"""End-to-end tests of the whole order saga through `OrderSagaSession` (the app's driver).

Each test deploys the SAME program (`__main__.py`) into the in-process moto, acts as a
client (place orders, put events, send messages) and asserts what a user would see:
the final table state, the events that flowed on the order bus, the DLQ contents.

What the session does not offer and these tests need lives here:
- `EventLog`: every event put on the order bus (the session's `on_event`), by order, in
  the order they were put (duplicates and replays are not in it);
- `InvocationLog`: every invocation's event and `InvocationResult` (error type, message,
  logs); the session only counts invocations and errors per function.

The simulated providers' random failures of the dev stack (`paymentTransientFailureRate`,
`shippingFailureRate`) are switched off: an order's outcome is decided by its customer
(`declined-*`, `undeliverable-*`) and the stock alone.
"""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from domain import history
from eventcraft import eventstore
from eventcraft_sandbox.clock import RunReport
from eventcraft_sandbox.lambda_runtime import InvocationResult
from order_saga.sandbox.session import OrderSagaSession

SAGA_MODES: Final = ("choreography", "orchestration")
# The dev stack's random provider failures, off: every outcome is chosen by the test.
DETERMINISTIC: Final[Mapping[str, str]] = {
    "paymentTransientFailureRate": "0",
    "shippingFailureRate": "0",
}
# The saga's own events (side flows such as OrderEnriched or CheckCompleted interleave
# with them in an order nothing promises, so sequences are compared on these only).
SAGA_EVENTS: Final = frozenset(
    {
        "OrderPlaced",
        "InventoryReserved",
        "InventoryReservationFailed",
        "PaymentProcessed",
        "PaymentFailed",
        "OrderShipped",
        "ShippingFailed",
        "InventoryReleased",
        "PaymentRefunded",
        "OrderCompleted",
        "OrderCancelled",
    }
)
DECLINED_PREFIX: Final = "declined-"  # paymentDeclineCustomerPrefix, the handler default
UNDELIVERABLE_PREFIX: Final = "undeliverable-"  # shippingFailCustomerPrefix, idem


@dataclass(frozen=True)
class BusEvent:
    """One event put on the order bus."""

    detail_type: str
    event_id: str
    order_id: str | None
    detail: Mapping[str, Any]


class EventLog:
    """The order bus's events as they were put (the session's `on_event`). `hooks` are
    called with each event after it is logged (from the putting thread)."""

    def __init__(self) -> None:
        self.events: list[BusEvent] = []
        self.hooks: list[Callable[[BusEvent], None]] = []
        self._lock = threading.Lock()

    def __call__(self, event: Mapping[str, Any]) -> None:
        raw = event.get("detail")
        detail: Mapping[str, Any] = raw if isinstance(raw, Mapping) else {}
        order_id = detail.get("orderId")
        logged = BusEvent(
            detail_type=str(event.get("detail-type", "")),
            event_id=str(detail.get("eventId") or event.get("id")),
            order_id=order_id if isinstance(order_id, str) else None,
            detail=detail,
        )
        with self._lock:
            self.events.append(logged)
            hooks = list(self.hooks)
        for hook in hooks:
            hook(logged)

    def of(self, order_id: str) -> list[BusEvent]:
        with self._lock:
            return [e for e in self.events if e.order_id == order_id]

    def saga_sequence(self, order_id: str) -> list[str]:
        """The detail-types of the order's saga events, in the order they were put."""
        return [e.detail_type for e in self.of(order_id) if e.detail_type in SAGA_EVENTS]

    def count(self, order_id: str, detail_type: str) -> int:
        return sum(1 for e in self.of(order_id) if e.detail_type == detail_type)


@dataclass(frozen=True)
class Invocation:
    """One invocation of a function (its short name), with what Lambda reported."""

    function: str
    event: Any
    result: InvocationResult

    @property
    def text(self) -> str:
        """The error and the logs: where a caught error (a batch's record) shows."""
        return f"{self.result.error_type}: {self.result.error_message}\n{self.result.logs}"


class InvocationLog:
    """Records every invocation the runtime makes (every path: Invoke, rule targets,
    pollers, Step Functions tasks), wrapping the runtime's `_invoke` as the session's
    own counting does."""

    def __init__(self, session: OrderSagaSession) -> None:
        self.invocations: list[Invocation] = []
        self._lock = threading.Lock()
        runtime = session.runtime
        original = runtime._invoke
        short = {name: key for key, name in (session.outputs.get("functions") or {}).items()}

        def invoke(spec: Any, event: Any, invocation_type: str, invoked_arn: str) -> Any:
            outcome = original(spec, event, invocation_type, invoked_arn)
            entry = Invocation(short.get(spec.name, spec.name), event, outcome.result)
            with self._lock:
                self.invocations.append(entry)
            return outcome

        runtime._invoke = invoke  # type: ignore[method-assign]

    def of(self, function: str) -> list[Invocation]:
        with self._lock:
            return [i for i in self.invocations if i.function == function]

    def failed(self, function: str) -> list[Invocation]:
        return [i for i in self.of(function) if i.result.error_type]


@dataclass
class E2E:
    """A started session with its logs."""

    session: OrderSagaSession
    bus: EventLog
    calls: InvocationLog
    _skus: Iterator[int] = field(default_factory=lambda: iter(range(1, 1_000_000)))

    def sku(self, stock: int) -> str:
        """A fresh SKU, seeded with `stock` units (tests sharing a session never touch
        each other's stock)."""
        sku = f"sku-e2e-{next(self._skus):04d}"
        self.session.seed_stock({sku: stock})
        return sku

    def place(self, customer: str, sku: str, quantity: int, unit_price_cents: int = 1250) -> str:
        """Place a one-line order through `place-order`; its order id."""
        answer = self.session.place_order(customer, [(sku, quantity, unit_price_cents)])
        assert answer["created"] is True, answer
        return str(answer["orderId"])

    def order(self, order_id: str) -> dict[str, Any]:
        record = self.session.order(order_id)
        assert record is not None, f"order {order_id} is not in the orders table"
        return record

    def payment(self, order_id: str) -> dict[str, Any] | None:
        return self.session.payments().get(order_id)

    def run(
        self, *, max_virtual_seconds: float = 7 * 86_400, max_real_seconds: float = 600.0
    ) -> RunReport:
        """Deliver everything (`run_until_quiet`); raises NotQuietError if it does not
        get quiet within the bounds."""
        return self.session.run_until_quiet(
            max_virtual_seconds=max_virtual_seconds, max_real_seconds=max_real_seconds
        )


@contextlib.contextmanager
def e2e_session(
    saga_mode: str | None = None,
    *,
    duplicate_rate: float = 0.0,
    faults: Sequence[str] = (),
    **config: str,
) -> Iterator[E2E]:
    """A deployed dev stack (`sagaMode` overridden when given), deterministic providers,
    `faults` injected (`eventcraft_sandbox.faults`, windows from the session's start)."""
    overrides: dict[str, str] = {**DETERMINISTIC, **config}
    if saga_mode is not None:
        overrides["sagaMode"] = saga_mode
    bus = EventLog()
    session = OrderSagaSession(
        "dev", config=overrides, duplicate_rate=duplicate_rate, on_event=bus, faults=faults
    )
    with session:
        assert session.outputs["sagaMode"] == (saga_mode or "both")
        yield E2E(session, bus, InvocationLog(session))


def read_model_fold(session: OrderSagaSession, order_id: str) -> tuple[dict[str, Any], int]:
    """The fold of the order's events in the event store (`domain.history.apply`) and
    the version of its last event: what its read model row must be."""
    items = session.stored_events().get(order_id) or []
    assert items, f"order {order_id} has no events in the event store"
    state: Any = history.initial_state()
    for item in items:
        state = history.apply(state, eventstore.stored_event_from_image(item))
    return json.loads(json.dumps(state)), int(items[-1]["version"])


def assert_read_model_is_fold(session: OrderSagaSession, order_id: str) -> None:
    """The order's read model row equals the fold of its stored events."""
    row = dict(session.read_model().get(order_id) or {})
    assert row, f"order {order_id} has no read model row"
    state, version = read_model_fold(session, order_id)
    assert row.pop("orderId") == order_id
    assert int(row.pop("version")) == version
    assert row == state


def assert_invariants(session: OrderSagaSession) -> None:
    report = session.invariants()
    assert report.ok, report.problems


def nonempty_dlqs(session: OrderSagaSession) -> dict[str, int]:
    return {name: depth for name, depth in session.dlq_depths().items() if depth}


def max_receive_count(session: OrderSagaSession, queue: str) -> int:
    """The maxReceiveCount of a work queue's redrive policy."""
    attributes = session.client("sqs").get_queue_attributes(
        QueueUrl=session.queue_url(queue), AttributeNames=["RedrivePolicy"]
    )["Attributes"]
    return int(json.loads(attributes["RedrivePolicy"])["maxReceiveCount"])


def sqs_bodies(invocation: Invocation) -> list[Any]:
    """The JSON bodies of an SQS batch invocation's records (raw text when not JSON)."""
    bodies: list[Any] = []
    for record in (invocation.event or {}).get("Records", []):
        try:
            bodies.append(json.loads(record["body"]))
        except ValueError:
            bodies.append(record["body"])
    return bodies


def only(items: Sequence[Any]) -> Any:
    """The single element of `items`."""
    assert len(items) == 1, items
    return items[0]
