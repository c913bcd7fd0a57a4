"""The order saga in the sandbox: `OrderSagaSession`, the generic `SandboxSession`
with this application's program, seeding, client calls, views and invariants.

    with OrderSagaSession("dev") as session:          # deploy + runtime + delivery
        session.seed_stock({"sku-red-mug": 10})
        placed = session.place_order("customer-1", [("sku-red-mug", 2, 1250)])
        session.run_until_quiet()                      # deliver it all, in virtual time
        session.order(placed["orderId"])["status"]     # "COMPLETED"
        session.invariants()                           # {"inventory_conserved": True, ...}

On top of the generic session:

* stack config overrides are bare keys of the `order-saga:` namespace: the saga mode,
  the simulated providers' failure knobs;
* seeding (stock, customers), acting as a client (`place_order`, `submit_order`,
  `order_status`; `put_event` takes the contract's source by default), readers of the
  orders, stock, reservations, payments, event store and read model;
* the outcome and payment events observed on the order bus, and `invariants()`: what
  must hold once the sandbox is quiet (the demo's verdict).

The sandbox has no code path of its own for the saga: the session only deploys the
program, calls its entry function as a client would, and reads what the handlers wrote.
"""

from __future__ import annotations

import functools
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Final

import contracts
from domain import history
from domain.inventory import stock_item
from eventcraft import eventstore
from eventcraft_sandbox.faults import FaultPlan
from eventcraft_sandbox.quotas import DEFAULT_CONCURRENCY_QUOTA
from eventcraft_sandbox.session import InvocationFailedError, Item, SandboxSession, plain

__all__ = [
    "FINAL_STATUSES",
    "PROGRAM",
    "InvariantReport",
    "InvocationFailedError",
    "OrderSagaSession",
]

# The program: the repository's `__main__.py`, its stack files next to it.
PROGRAM: Final = Path(__file__).resolve().parents[2] / "__main__.py"
PROJECT: Final = "order-saga"
FINAL_STATUSES: Final = frozenset({"COMPLETED", "CANCELLED"})
OUTCOME_EVENTS: Final = {"OrderCompleted": "COMPLETED", "OrderCancelled": "CANCELLED"}
# Events the order bus carries from the system's own producers.
SYSTEM_SOURCE_PREFIX: Final = "order-saga."

# Records a broken invariant: (name, example).
_Fail = Callable[[str, str], None]


@dataclass(frozen=True)
class InvariantReport:
    """`results`: invariant name -> holds; `problems`: for a failed one, examples of
    what breaks it (at most a few, each naming the order or SKU)."""

    results: dict[str, bool]
    problems: dict[str, list[str]] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return all(self.results.values())


class OrderSagaSession(SandboxSession):
    """The sandbox running the order saga for one stack (see the module docstring).

    - `stack`: reads `Pulumi.<stack>.yaml` ("dev" by default);
    - `config`: overrides of the stack's `order-saga:` keys (bare names, e.g.
      `{"sagaMode": "orchestration", "paymentTransientFailureRate": "0.2"}`);
    - `program`: the program file (default `__main__.py`) or a callable;
    - `duplicate_rate`: 0..1, the share of the order bus's events put a second time
      (default 0); `seed`: for that choice (default 0);
    - `clock_start`, `timeout_scale`, `on_event`, `faults` (`NAME[@TARGET]=VALUE`
      texts drawn with `seed`, or a `FaultPlan`), `concurrency_quota` (the account's
      Lambda concurrency quota, default 1000): as `SandboxSession`'s.
    """

    RULE_NAME: ClassVar[str] = "saga-{rule}-rule"

    def __init__(
        self,
        stack: str = "dev",
        *,
        config: Mapping[str, Any] | None = None,
        program: Path | Callable[[], Any] = PROGRAM,
        duplicate_rate: float = 0.0,
        seed: int | str = 0,
        clock_start: float | None = None,
        timeout_scale: float = 1.0,
        on_event: Callable[[Mapping[str, Any]], None] | None = None,
        faults: FaultPlan | Sequence[str] = (),
        concurrency_quota: int = DEFAULT_CONCURRENCY_QUOTA,
    ) -> None:
        super().__init__(
            program,
            stack,
            project=PROJECT,
            config=config,
            duplicate_rate=duplicate_rate,
            duplicate_sources=SYSTEM_SOURCE_PREFIX,
            seed=seed,
            clock_start=clock_start,
            timeout_scale=timeout_scale,
            on_event=on_event,
            faults=faults,
            concurrency_quota=concurrency_quota,
        )
        # orderId -> {eventId: COMPLETED / CANCELLED}: outcome events by id, not by
        # delivery (a redelivered or republished event is the same event).
        self.outcomes: dict[str, dict[str, str]] = {}
        self.payment_events: dict[str, set[str]] = {}  # orderId -> PaymentProcessed ids
        self.observed_event_ids: set[str] = set()  # every event seen on the bus, by id
        self.initial_stock: dict[str, int] = {}
        self.placed: list[str] = []  # order ids, in placing order
        self.client_retries = 0  # requests a client sent again after a failure (demo)

    def dead_letter_queues(self) -> dict[str, str]:
        """Every DLQ the outputs name -> its URL (names as `python -m ops dlq list`)."""
        from ops.outputs import parse

        return {d.name: d.url for d in parse(self.outputs, origin="sandbox").all_dlqs()}

    # ------------------------------------------------------------------ seeding

    def seed_stock(self, stock: Mapping[str, int]) -> None:
        """Put `available` units of each SKU in the inventory table (as an operator
        does: `domain.inventory.stock_item`), and remember it as the initial stock."""
        for sku, available in stock.items():
            self.put_item("inventory", stock_item(sku, int(available)))
            self.initial_stock[sku] = int(available)

    def seed_customers(self, customers: Iterable[Mapping[str, Any]]) -> None:
        """Put customer records (`customerId`, `tier`, `name`, `region`,
        `creditLimitCents`: see domain.enrichment) in the customers table."""
        for customer in customers:
            self.put_item("customers", customer)

    # ------------------------------------------------------------------ acting

    def place_order(
        self,
        customer_id: str,
        items: Sequence[tuple[str, int, int] | Mapping[str, Any]],
        *,
        client_request_id: str | None = None,
        currency: str | None = None,
    ) -> dict[str, Any]:
        """Place an order through the entry function (`place-order`), as a client does.

        `items`: (sku, quantity, unitPriceCents) tuples or request lines. Returns the
        function's answer (`orderId`, `status`, `created`, `totalCents`, `currency`);
        raises InvocationFailedError when it refuses the request.
        """
        lines = [
            dict(line)
            if isinstance(line, Mapping)
            else {"sku": line[0], "quantity": line[1], "unitPriceCents": line[2]}
            for line in items
        ]
        request: dict[str, Any] = {
            "clientRequestId": client_request_id or f"session-{len(self.placed) + 1}",
            "customerId": customer_id,
            "items": lines,
        }
        if currency:
            request["currency"] = currency
        return self.submit_order(request)

    def submit_order(self, request: Mapping[str, Any]) -> dict[str, Any]:
        """Invoke `place-order` with a request payload as is (see `place_order`)."""
        result = self.invoke("place-order", dict(request))
        if result.error_type:
            raise InvocationFailedError("place-order", result)
        answer = dict(result.payload)
        # A retry answered with the order placed before (`created` false) is that order:
        # recorded once, whether the first answer was seen or lost.
        with self._lock:
            if answer.get("orderId") and str(answer["orderId"]) not in self.placed:
                self.placed.append(str(answer["orderId"]))
        return answer

    def order_status(self, order_id: str) -> dict[str, Any]:
        """The `order-status` query function's answer for an order."""
        result = self.invoke("order-status", {"orderId": order_id})
        if result.error_type:
            raise InvocationFailedError("order-status", result)
        return dict(result.payload)

    def put_event(
        self, detail_type: str, detail: Mapping[str, Any] | str, *, source: str | None = None
    ) -> str:
        """Put one event on the order bus as the administrator; returns its id.

        `source` defaults to the contract's source for `detail_type`; `detail` may be
        a string (e.g. invalid JSON content for a poison event)."""
        if source is None:
            source = contracts.model_for(detail_type).SOURCE
        return super().put_event(detail_type, detail, source=source)

    # ------------------------------------------------------------------ readers

    def order(self, order_id: str) -> Item | None:
        """The order's record in the orders table (its saga state), or None."""
        return self.get("orders", {"pk": f"order#{order_id}"})

    def orders(self) -> dict[str, Item]:
        """Every order record by order id."""
        return {
            str(i["orderId"]): i for i in self.scan("orders") if str(i["pk"]).startswith("order#")
        }

    def stock(self) -> dict[str, int]:
        """Available units by SKU."""
        return {
            str(i["sku"]): int(i["available"])
            for i in self.scan("inventory")
            if str(i["pk"]).startswith("sku#")
        }

    def reservations(self) -> dict[str, Item]:
        """Reservation decisions by order id."""
        return {
            str(i["orderId"]): i
            for i in self.scan("inventory")
            if str(i["pk"]).startswith("reservation#")
        }

    def payments(self) -> dict[str, Item]:
        """Payment records by order id."""
        return {str(i["orderId"]): i for i in self.scan("payments") if "orderId" in i}

    def shipments(self) -> dict[str, Item]:
        """Shipment decisions by order id (status SHIPPED or FAILED)."""
        return {str(i["orderId"]): i for i in self.scan("shipments") if "orderId" in i}

    def outbox_rows(self) -> list[Item]:
        """The outbox's rows (`published` false until the relay or sweeper put them)."""
        return [i for i in self.scan("outbox") if str(i.get("pk", "")).startswith("outbox#")]

    def stored_events(self) -> dict[str, list[Item]]:
        """The event store's events by aggregate (order) id, in version order."""
        by_order: dict[str, list[Item]] = {}
        for item in self.scan("events"):
            by_order.setdefault(str(item["aggregateId"]), []).append(item)
        for events in by_order.values():
            events.sort(key=lambda e: int(e["version"]))
        return by_order

    def read_model(self) -> dict[str, Item]:
        """The order history read model's rows by order id."""
        return {str(i["orderId"]): i for i in self.scan("history")}

    def _record_event(self, detail_type: str, detail: Mapping[str, Any], event_id: str) -> None:
        self.observed_event_ids.add(event_id)
        order_id = detail.get("orderId")
        if isinstance(order_id, str):
            if detail_type in OUTCOME_EVENTS:
                self.outcomes.setdefault(order_id, {})[event_id] = OUTCOME_EVENTS[detail_type]
            if detail_type == "PaymentProcessed":
                self.payment_events.setdefault(order_id, set()).add(event_id)

    def lost_events(self) -> list[str]:
        """Events written to the outbox that never reached the bus (`detailType
        eventId`): what a stranded outbox row or a dropped publish loses."""
        with self._lock:
            observed = set(self.observed_event_ids)
        return sorted(
            f"{row.get('detailType')} {row.get('eventId')}"
            for row in self.outbox_rows()
            if str(row.get("eventId")) not in observed
        )

    # ------------------------------------------------------------------ operating

    def redrive_dead_letters(self) -> dict[str, dict[str, int]]:
        """Move every DLQ's messages back, as an operator does with `python -m ops dlq
        redrive <dlq>` (the same code), as the administrator; returns, per DLQ that held
        messages, how many were `examined`, `moved` (or resolved: an outbox relay's
        pointer once its rows are published) and `kept` (not moved, e.g. a
        stream-failure pointer). Run the scheduler afterwards to deliver them."""
        from ops.aws import Clients
        from ops.dlq import redrive
        from ops.outputs import parse

        outputs = parse(self.outputs, origin="sandbox")
        clients = Clients(session=self.sandbox.new_session())
        moved: dict[str, dict[str, int]] = {}
        for name, depth in self.dlq_depths().items():
            if not depth:
                continue
            data = redrive(clients, outputs, name, limit=max(depth, 1) * 2).data
            # A relay pointer whose rows were all republished is resolved (deleted), not
            # moved: it counts as redriven too.
            moved[name] = {
                "examined": int(data["examined"]),
                "moved": int(data["moved"]) + len(data.get("resolved") or ()),
                "kept": len(data["notMoved"]),
            }
        return moved

    # ------------------------------------------------------------------ invariants

    def invariants(self) -> InvariantReport:
        """What must hold once the sandbox is quiet, with examples of what breaks it:

        - every_order_final: every order placed (the client's answers and every order
          in the orders table, so one whose reply was lost counts too) is COMPLETED or
          CANCELLED, and every order a client was told about exists (with a state
          machine, the problem says how the order's latest execution ended);
        - one_outcome_event_per_order: each final order published exactly one outcome
          event (counted by event id, not by delivery: a redelivered or republished
          event is the same event), the one of its status;
        - inventory_conserved: per seeded SKU, available + reserved (held by orders
          not shipped) + shipped (by the shipments table, not the order's status) ==
          the initial stock, and available >= 0;
        - cancelled_orders_released_stock: no reservation of a CANCELLED order holds
          stock;
        - no_double_charge: at most one PaymentProcessed per order, and never more
          charged than the order's total;
        - refunds_match_charges_of_cancelled_orders: charged - refunded is the order's
          total for a COMPLETED order and 0 for a CANCELLED one;
        - shipped_orders_kept_money_and_goods: no refund and no release of stock for an
          order whose goods were shipped;
        - every_outbox_row_published: no event is stranded in the outbox;
        - read_model_matches_event_store: each order's row in the history read model
          equals the fold of its events in the event store (domain.history.apply).
        """
        problems: dict[str, list[str]] = {}

        def fail(name: str, text: str) -> None:
            problems.setdefault(name, []).append(text)

        orders = self.orders()
        self._check_outcomes(orders, fail)
        self._check_inventory(orders, fail)
        self._check_payments(orders, fail)
        for row in self.outbox_rows():
            if row.get("published") is not True:
                fail(
                    "every_outbox_row_published",
                    f"{row.get('detailType')} {row.get('eventId')} written {row.get('createdAt')}",
                )
        for text in self._read_model_differences():
            fail("read_model_matches_event_store", text)

        names = (
            "every_order_final",
            "one_outcome_event_per_order",
            "inventory_conserved",
            "cancelled_orders_released_stock",
            "no_double_charge",
            "refunds_match_charges_of_cancelled_orders",
            "shipped_orders_kept_money_and_goods",
            "every_outbox_row_published",
            "read_model_matches_event_store",
        )
        return InvariantReport(
            results={name: name not in problems for name in names},
            problems={name: texts[:5] for name, texts in problems.items()},
        )

    def _saga_executions(self) -> list[dict[str, Any]] | None:
        """Every execution of the saga's state machine, described (input, status, error),
        or None without a state machine."""
        machine = self.outputs.get("stateMachineArn")
        if not machine:
            return None
        sfn = self.client("stepfunctions")
        return [
            sfn.describe_execution(executionArn=execution["executionArn"])
            for page in sfn.get_paginator("list_executions").paginate(stateMachineArn=machine)
            for execution in page["executions"]
        ]

    @staticmethod
    def _execution_outcome(order_id: str, executions: Sequence[Mapping[str, Any]] | None) -> str:
        """How the order's latest saga execution among `executions` ended, for a stuck
        order's problem text ('' without a state machine)."""
        if executions is None:
            return ""
        # Started by a rule: named by EventBridge, the order is in the input.
        found = [described for described in executions if order_id in str(described.get("input"))]
        if not found:
            return "no saga execution"
        latest = max(found, key=lambda described: described["startDate"])
        ended = " ".join(str(part) for part in (latest.get("error"), latest.get("cause")) if part)
        return f"its execution {latest['name']} is {latest['status']}" + (
            f": {ended[:300]}" if ended else ""
        )

    def _check_outcomes(self, orders: Mapping[str, Item], fail: _Fail) -> None:
        """every_order_final, one_outcome_event_per_order."""
        with self._lock:
            placed = list(self.placed)
            outcomes = {k: dict(v) for k, v in self.outcomes.items()}
        # Read once, at the first stuck order (not per stuck order, not when none is).
        saga_executions = functools.cache(self._saga_executions)
        for order_id in dict.fromkeys([*placed, *orders]):
            record = orders.get(order_id)
            status = None if record is None else str(record.get("status"))
            if status not in FINAL_STATUSES:
                why = self._execution_outcome(order_id, saga_executions())
                fail(
                    "every_order_final",
                    f"order {order_id} is {status or 'missing'}" + (f" ({why})" if why else ""),
                )
        for order_id, record in orders.items():
            status = str(record.get("status"))
            published = outcomes.get(order_id, {})
            if status in FINAL_STATUSES and list(published.values()) != [status]:
                fail(
                    "one_outcome_event_per_order",
                    f"order {order_id} is {status}; outcome events: "
                    + (", ".join(f"{v} {k}" for k, v in published.items()) or "none"),
                )
            elif status not in FINAL_STATUSES and published:
                fail(
                    "one_outcome_event_per_order",
                    f"order {order_id} is {status} after its outcome {list(published.values())}",
                )

    def _check_inventory(self, orders: Mapping[str, Item], fail: _Fail) -> None:
        """inventory_conserved, cancelled_orders_released_stock,
        shipped_orders_kept_money_and_goods (stock)."""
        stock = self.stock()
        shipped_orders = {k for k, v in self.shipments().items() if v.get("status") == "SHIPPED"}
        held: Counter[str] = Counter()
        shipped: Counter[str] = Counter()
        for order_id, reservation in self.reservations().items():
            status = reservation.get("status")
            if order_id in shipped_orders and status != "RESERVED":
                fail(
                    "shipped_orders_kept_money_and_goods",
                    f"order {order_id} was shipped; its reservation is {status}",
                )
            cancelled = str((orders.get(order_id) or {}).get("status")) == "CANCELLED"
            if status == "RESERVED" and cancelled:
                fail("cancelled_orders_released_stock", f"order {order_id} still holds stock")
            if order_id in shipped_orders:
                counter = shipped
            elif status == "RESERVED":
                counter = held
            else:
                continue
            for line in reservation.get("items", ()):
                counter[str(line["sku"])] += int(line["quantity"])
        for sku, initial in sorted(self.initial_stock.items()):
            available = stock.get(sku, 0)
            if available < 0 or available + held[sku] + shipped[sku] != initial:
                fail(
                    "inventory_conserved",
                    f"{sku}: available {available} + reserved {held[sku]} + shipped "
                    f"{shipped[sku]} != initial {initial}",
                )

    def _check_payments(self, orders: Mapping[str, Item], fail: _Fail) -> None:
        """no_double_charge, refunds_match_charges_of_cancelled_orders,
        shipped_orders_kept_money_and_goods (money)."""
        payments = self.payments()
        shipments = self.shipments()
        with self._lock:
            payment_events = {k: set(v) for k, v in self.payment_events.items()}
        for order_id, ids in payment_events.items():
            if len(ids) > 1:
                fail("no_double_charge", f"order {order_id}: {len(ids)} PaymentProcessed events")
        for order_id, record in orders.items():
            status = str(record.get("status"))
            payment = payments.get(order_id) or {}
            charged = int(payment.get("chargedCents", 0))
            refunded = int(payment.get("refundedCents", 0))
            total = int(record.get("totalCents", -1))
            if charged > total:
                fail("no_double_charge", f"order {order_id}: charged {charged} > total {total}")
            expected = {"COMPLETED": total, "CANCELLED": 0}.get(status)
            if expected is not None and charged - refunded != expected:
                fail(
                    "refunds_match_charges_of_cancelled_orders",
                    f"{status.lower()} order {order_id}: charged {charged} - refunded "
                    f"{refunded} != {expected}",
                )
            shipped = (shipments.get(order_id) or {}).get("status") == "SHIPPED"
            if shipped and refunded:
                fail(
                    "shipped_orders_kept_money_and_goods",
                    f"order {order_id} was shipped; {refunded} of {charged} refunded",
                )

    def _read_model_differences(self) -> list[str]:
        """Orders whose read model row is not the fold of their stored events."""
        differences: list[str] = []
        rows = self.read_model()
        stored = self.stored_events()
        for order_id, items in sorted(stored.items()):
            state: Any = history.initial_state()
            for item in items:
                state = history.apply(state, eventstore.stored_event_from_image(item))
            row = dict(rows.get(order_id) or {})
            version = row.pop("version", 0)
            row.pop("orderId", None)
            if int(version) != int(items[-1]["version"]) or row != plain(state):
                differences.append(
                    f"order {order_id}: read model at version {version}, event store at "
                    f"{items[-1]['version']}"
                    + ("" if row == plain(state) else " (the rows differ)")
                )
        for order_id in sorted(set(rows) - set(stored)):
            differences.append(f"order {order_id}: a read model row without events")
        return differences
