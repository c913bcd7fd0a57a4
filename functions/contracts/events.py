"""The events of the order saga, one pydantic model per detail-type and version.

Choreography: OrderPlaced -> InventoryReserved -> PaymentProcessed -> OrderShipped ->
OrderCompleted; a failure (InventoryReservationFailed, PaymentFailed, ShippingFailed) is
compensated (PaymentRefunded, InventoryReleased) and ends in OrderCancelled.
Side flows: OrderEnriched, HighValueOrderFlagged, and the fork/join checks (one
CheckCompleted per check, then AllChecksComplete).
"""

from __future__ import annotations

from typing import Final, Literal

from pydantic import Field, computed_field, model_validator

from contracts.base import (
    Cents,
    Currency,
    NonEmptyStr,
    OptionalText,
    OrderEvent,
    Quantity,
    Reason,
    Source,
)
from eventcraft.contracts import ContractModel


class OrderLine(ContractModel):
    sku: NonEmptyStr
    quantity: Quantity
    unit_price_cents: Cents


class StockLine(ContractModel):
    sku: NonEmptyStr
    quantity: Quantity


class _OrderPlacedFields(OrderEvent):
    # Required on read too (narrowing OrderEvent's): every OrderPlaced ever published,
    # v1 included, carries its customer.
    customer_id: NonEmptyStr
    items: list[OrderLine] = Field(min_length=1)
    total_cents: Cents

    @model_validator(mode="after")
    def _total_is_sum_of_lines(self) -> _OrderPlacedFields:
        expected = sum(line.quantity * line.unit_price_cents for line in self.items)
        if self.total_cents != expected:
            raise ValueError(
                f"totalCents {self.total_cents} != sum of quantity * unitPriceCents "
                f"({expected}): the producer computed the total wrongly"
            )
        return self


class OrderPlacedV1(_OrderPlacedFields):
    """OrderPlaced as first published: no currency. Read only, through the upcaster."""

    DETAIL_TYPE = "OrderPlaced"
    SOURCE = Source.ORDERS
    version: Literal["1"] = "1"


class OrderPlaced(_OrderPlacedFields):
    """A customer placed an order (written with the outbox row in one transaction)."""

    DETAIL_TYPE = "OrderPlaced"
    SOURCE = Source.ORDERS
    version: Literal["2"] = "2"
    currency: Currency


class InventoryReserved(OrderEvent):
    DETAIL_TYPE = "InventoryReserved"
    SOURCE = Source.INVENTORY
    version: Literal["1"] = "1"
    reservation_id: NonEmptyStr
    items: list[StockLine] = Field(min_length=1)


class InventoryReservationFailed(OrderEvent):
    DETAIL_TYPE = "InventoryReservationFailed"
    SOURCE = Source.INVENTORY
    version: Literal["1"] = "1"
    reason: Reason
    unavailable_skus: list[NonEmptyStr] = Field(default_factory=list)


class PaymentProcessed(OrderEvent):
    DETAIL_TYPE = "PaymentProcessed"
    SOURCE = Source.PAYMENTS
    version: Literal["1"] = "1"
    payment_id: NonEmptyStr
    amount_cents: Cents
    currency: Currency


class PaymentFailed(OrderEvent):
    DETAIL_TYPE = "PaymentFailed"
    SOURCE = Source.PAYMENTS
    version: Literal["1"] = "1"
    reason: Reason
    amount_cents: Cents
    currency: Currency


class OrderShipped(OrderEvent):
    DETAIL_TYPE = "OrderShipped"
    SOURCE = Source.SHIPPING
    version: Literal["1"] = "1"
    shipment_id: NonEmptyStr
    carrier: NonEmptyStr
    tracking_number: NonEmptyStr


class ShippingFailed(OrderEvent):
    DETAIL_TYPE = "ShippingFailed"
    SOURCE = Source.SHIPPING
    version: Literal["1"] = "1"
    reason: Reason


class PaymentRefunded(OrderEvent):
    """Compensation of PaymentProcessed."""

    DETAIL_TYPE = "PaymentRefunded"
    SOURCE = Source.PAYMENTS
    version: Literal["1"] = "1"
    payment_id: NonEmptyStr
    refund_id: NonEmptyStr
    amount_cents: Cents
    currency: Currency


class InventoryReleased(OrderEvent):
    """Compensation of InventoryReserved."""

    DETAIL_TYPE = "InventoryReleased"
    SOURCE = Source.INVENTORY
    version: Literal["1"] = "1"
    reservation_id: NonEmptyStr
    items: list[StockLine] = Field(min_length=1)


SagaStep = Literal["inventory", "payment", "shipping"]


class OrderCancelled(OrderEvent):
    """The saga ended in failure; every completed step has been compensated."""

    DETAIL_TYPE = "OrderCancelled"
    SOURCE = Source.ORDERS
    version: Literal["1"] = "1"
    reason: Reason
    failed_step: SagaStep


class OrderCompleted(OrderEvent):
    DETAIL_TYPE = "OrderCompleted"
    SOURCE = Source.ORDERS
    version: Literal["1"] = "1"


CustomerTier = Literal["standard", "gold", "platinum"]


class OrderEnriched(OrderEvent):
    """OrderPlaced plus what the customer table knows about the customer."""

    DETAIL_TYPE = "OrderEnriched"
    SOURCE = Source.ENRICHMENT
    version: Literal["1"] = "1"
    customer_id: NonEmptyStr  # required on read too: carried since version 1
    customer_tier: CustomerTier
    customer_name: OptionalText = None
    total_cents: Cents
    currency: Currency
    # An unknown customer is a business outcome: customer_known is False and the tier
    # is the fallback one. Region and credit limit come from the customer record.
    customer_known: bool = True
    customer_region: OptionalText = None
    credit_limit_cents: Cents | None = None


class HighValueOrderFlagged(OrderEvent):
    DETAIL_TYPE = "HighValueOrderFlagged"
    SOURCE = Source.ROUTING
    version: Literal["1"] = "1"
    customer_id: NonEmptyStr  # required on read too: carried since version 1
    total_cents: Cents
    currency: Currency
    threshold_cents: Cents


CheckName = Literal["inventory", "credit", "shippingQuote"]
# The fork of the fork/join: AllChecksComplete is emitted once each of these has reported.
CHECKS: Final[tuple[CheckName, ...]] = ("inventory", "credit", "shippingQuote")


class CheckResult(ContractModel):
    passed: bool
    reason: OptionalText = Field(default=None, description="Why the check failed.")
    quote_cents: Cents | None = Field(default=None, description="Shipping quote only.")


class CheckCompleted(OrderEvent):
    """One branch of the fork/join reported (inventory, credit or shipping quote)."""

    DETAIL_TYPE = "CheckCompleted"
    SOURCE = Source.CHECKS
    version: Literal["1"] = "1"
    check: CheckName
    result: CheckResult


class AllChecksComplete(OrderEvent):
    """The join: every check reported. `allPassed` is derived, so it cannot disagree."""

    DETAIL_TYPE = "AllChecksComplete"
    SOURCE = Source.CHECKS
    version: Literal["1"] = "1"
    inventory: CheckResult
    credit: CheckResult
    shipping_quote: CheckResult

    @computed_field  # type: ignore[prop-decorator]
    @property
    def all_passed(self) -> bool:
        return self.inventory.passed and self.credit.passed and self.shipping_quote.passed
