"""The order-saga system's functions: which handler each runs, with what limits and
settings, and what each handler entry emits. The code they run lives in `functions/`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from order_saga.config import SagaMode

ROOT: Final = Path(__file__).resolve().parent.parent
# The Lambda code root (the code asset of every function) and its third-party
# dependencies (the layer), built into a cache beside the project.
CODE_DIR: Final = ROOT / "functions"
REQUIREMENTS_FILE: Final = CODE_DIR / "requirements.txt"
# The handler library goes into the layer from its own wheel.
HANDLER_LIBRARY: Final = ROOT / "eventcraft"
LAYER_CACHE_DIR: Final = ROOT / ".build" / "layers"

# The durable saga (sagaMode durable / all): one durable function, on the runtime the
# durable SDK supports, with a layer of its own that holds the SDK.
DURABLE_SAGA_HANDLER: Final = "handlers.durable_order_saga.handler"
DURABLE_PYTHON: Final = "3.13"
DURABLE_REQUIREMENTS_FILE: Final = CODE_DIR / "requirements-durable.txt"

RELAY_HANDLER: Final = "handlers.outbox_relay.handler"
# Republishes what the relay gave up on (an outage longer than its retries), on a schedule.
SWEEPER_HANDLER: Final = "handlers.outbox_sweeper.handler"
SWEEPER_TIMEOUT_SECONDS: Final = 300

# The event types each handler entry emits (to the outbox or the bus), as its docstring
# says; a saga step recorded in the order's saga state may also end the saga.
EMITS: Final[Mapping[str, tuple[str, ...]]] = {
    "handlers.place_order.handler": ("OrderPlaced",),
    "handlers.import_orders.handler": ("OrderPlaced",),
    "handlers.reserve_inventory.handler": ("InventoryReserved", "InventoryReservationFailed"),
    "handlers.reserve_inventory.task": (
        "InventoryReserved",
        "InventoryReservationFailed",
        "OrderCancelled",
    ),
    "handlers.process_payment.handler": ("PaymentProcessed", "PaymentFailed"),
    "handlers.process_payment.task": ("PaymentProcessed", "PaymentFailed", "OrderCancelled"),
    "handlers.ship_order.handler": ("OrderShipped", "ShippingFailed"),
    "handlers.ship_order.task": ("OrderShipped", "ShippingFailed", "OrderCompleted"),
    "handlers.release_inventory.handler": ("InventoryReleased",),
    "handlers.release_inventory.task": ("InventoryReleased", "OrderCancelled"),
    "handlers.refund_payment.handler": ("PaymentRefunded",),
    "handlers.refund_payment.task": ("PaymentRefunded", "OrderCancelled"),
    "handlers.saga_progress.handler": (
        "OrderCompleted",
        "OrderCancelled",
        "InventoryReleased",  # a late reservation of a cancelled order, released
        "PaymentRefunded",  # a late charge of a cancelled order, refunded
    ),
    "handlers.saga_progress.record_outcome": ("OrderCancelled",),
    "handlers.enrich_order.handler": ("OrderEnriched",),
    "handlers.high_value_review.handler": ("HighValueOrderFlagged",),
    "handlers.run_check.inventory_handler": ("CheckCompleted",),
    "handlers.run_check.credit_handler": ("CheckCompleted",),
    "handlers.run_check.shipping_quote_handler": ("CheckCompleted",),
    "handlers.aggregate_checks.handler": ("AllChecksComplete",),
}


@dataclass(frozen=True, kw_only=True)
class SystemFunction:
    """One function of the system.

    name: the component name suffix (`<system>-<name>`) and the key in outputs.
    handler: `handlers.<module>.<entry>`; its module's ACCESS is wired.
    timeout_seconds / memory_mb: the function's limits.
    access: None (default) = the module's whole ACCESS; else the variables this entry
        needs (e.g. one check of `handlers.run_check`).
    settings: groups of non-resource settings set in its environment ("payments",
        "shipping", "review", "history", "windows"); DEFAULT_CURRENCY is always set.
    async_target: invoked asynchronously by an EventBridge rule: its failed events go
        to an on-failure queue (default False).
    reserved: the stack's reservedConcurrency applies (default True; operator tools
        are not reserved capacity).
    """

    name: str
    handler: str
    timeout_seconds: int
    memory_mb: int = 256
    access: tuple[str, ...] | None = None
    settings: tuple[str, ...] = ()
    async_target: bool = False
    reserved: bool = True


_PUBLISH: Final = ("EVENT_BUS_NAME", "IDEMPOTENCY_TABLE")

CORE_FUNCTIONS: Final = (
    SystemFunction(name="place-order", handler="handlers.place_order.handler", timeout_seconds=10),
    SystemFunction(
        name="order-status", handler="handlers.order_status.handler", timeout_seconds=10
    ),
)
CHOREOGRAPHY_FUNCTIONS: Final = (
    SystemFunction(
        name="reserve-inventory", handler="handlers.reserve_inventory.handler", timeout_seconds=30
    ),
    SystemFunction(
        name="process-payment",
        handler="handlers.process_payment.handler",
        timeout_seconds=30,
        settings=("payments",),
    ),
    SystemFunction(
        name="ship-order",
        handler="handlers.ship_order.handler",
        timeout_seconds=30,
        settings=("shipping",),
        async_target=True,
    ),
    SystemFunction(
        name="release-inventory",
        handler="handlers.release_inventory.handler",
        timeout_seconds=30,
        async_target=True,
    ),
    SystemFunction(
        name="refund-payment",
        handler="handlers.refund_payment.handler",
        timeout_seconds=30,
        async_target=True,
    ),
    SystemFunction(
        name="saga-progress", handler="handlers.saga_progress.handler", timeout_seconds=30
    ),
)
ORCHESTRATION_FUNCTIONS: Final = (
    SystemFunction(
        name="reserve-inventory-task", handler="handlers.reserve_inventory.task", timeout_seconds=30
    ),
    SystemFunction(
        name="process-payment-task",
        handler="handlers.process_payment.task",
        timeout_seconds=30,
        settings=("payments",),
    ),
    SystemFunction(
        name="ship-order-task",
        handler="handlers.ship_order.task",
        timeout_seconds=30,
        settings=("shipping",),
    ),
    SystemFunction(
        name="release-inventory-task", handler="handlers.release_inventory.task", timeout_seconds=30
    ),
    SystemFunction(
        name="refund-payment-task", handler="handlers.refund_payment.task", timeout_seconds=30
    ),
    SystemFunction(
        name="record-outcome", handler="handlers.saga_progress.record_outcome", timeout_seconds=30
    ),
)
SIDE_FLOW_FUNCTIONS: Final = (
    SystemFunction(
        name="enrich-order",
        handler="handlers.enrich_order.handler",
        timeout_seconds=30,
        async_target=True,
    ),
    SystemFunction(
        name="high-value-review",
        handler="handlers.high_value_review.handler",
        timeout_seconds=30,
        settings=("review",),
        async_target=True,
    ),
    SystemFunction(
        name="check-inventory",
        handler="handlers.run_check.inventory_handler",
        timeout_seconds=30,
        access=("INVENTORY_TABLE", *_PUBLISH),
        async_target=True,
    ),
    SystemFunction(
        name="check-credit",
        handler="handlers.run_check.credit_handler",
        timeout_seconds=30,
        access=("CUSTOMERS_TABLE", *_PUBLISH),
        async_target=True,
    ),
    SystemFunction(
        name="check-shipping-quote",
        handler="handlers.run_check.shipping_quote_handler",
        timeout_seconds=30,
        access=_PUBLISH,
        async_target=True,
    ),
    SystemFunction(
        name="aggregate-checks", handler="handlers.aggregate_checks.handler", timeout_seconds=30
    ),
    SystemFunction(
        name="record-history",
        handler="handlers.record_history.handler",
        timeout_seconds=30,
        settings=("history",),
        async_target=True,
    ),
    SystemFunction(
        name="project-order-history",
        handler="handlers.project_order_history.handler",
        timeout_seconds=60,
    ),
    SystemFunction(
        name="snapshot-aggregates",
        handler="handlers.snapshot_aggregates.handler",
        timeout_seconds=60,
        settings=("history",),
    ),
    SystemFunction(
        name="window-aggregate",
        handler="handlers.window_aggregate.handler",
        timeout_seconds=60,
        settings=("windows",),
    ),
    SystemFunction(
        # About 50 orders a second; a larger file continues from its checkpoint in new
        # invocations of this function, which it invokes itself (its docstring).
        name="import-orders",
        handler="handlers.import_orders.handler",
        timeout_seconds=300,
        memory_mb=512,
        async_target=True,
    ),
)
DLQ_PROCESSOR_HANDLER: Final = "handlers.dlq_processor.handler"
# Its receive/redrive of up to 1000 messages, one call each.
DLQ_PROCESSOR_TIMEOUT_SECONDS: Final = 300


def function_specs(mode: SagaMode) -> tuple[SystemFunction, ...]:
    """The functions of a saga mode (the DLQ processors come with their queues)."""
    specs = [*CORE_FUNCTIONS]
    if mode in ("choreography", "both"):
        specs += CHOREOGRAPHY_FUNCTIONS
    if mode in ("orchestration", "both"):
        specs += ORCHESTRATION_FUNCTIONS
    return (*specs, *SIDE_FLOW_FUNCTIONS)
