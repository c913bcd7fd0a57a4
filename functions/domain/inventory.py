"""Inventory: stock per SKU, one reservation per order, and its release.

The rules (the adapter enforces them with DynamoDB conditions):
- an order's lines are reserved all together or not at all (one transaction), and a SKU's
  `available` stock never goes below zero (each decrement is conditional on
  `available >= quantity`);
- an order has at most one reservation decision (`reservation#<orderId>`, written only if
  absent): RESERVED or REJECTED, and a redelivered OrderPlaced finds it and changes
  nothing;
- releasing is idempotent: RESERVED -> RELEASED restores the stock once; releasing an
  order that reserved nothing writes a RELEASED tombstone (so a reservation arriving
  later is refused, not left dangling) and restores nothing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum
from typing import Any, Final

from contracts import OrderLine, StockLine

STOCK_KEY_PREFIX: Final = "sku#"
RESERVATION_KEY_PREFIX: Final = "reservation#"


def stock_key(sku: str) -> str:
    """The inventory table key (`pk`) of a SKU's stock item."""
    return f"{STOCK_KEY_PREFIX}{sku}"


def reservation_key(order_id: str) -> str:
    """The inventory table key (`pk`) of an order's reservation item."""
    return f"{RESERVATION_KEY_PREFIX}{order_id}"


def reservation_id(order_id: str) -> str:
    """The id of an order's reservation: derived from the order, so every attempt to
    reserve the same order names the same reservation."""
    return f"reservation-{order_id}"


def stock_item(sku: str, available: int) -> dict[str, Any]:
    """A stock item (seed data): `available` units of `sku`."""
    if available < 0:
        raise ValueError(f"available stock of {sku!r} must be >= 0, got {available}")
    return {"pk": stock_key(sku), "sku": sku, "available": available}


class ReservationStatus(StrEnum):
    RESERVED = "RESERVED"
    REJECTED = "REJECTED"
    RELEASED = "RELEASED"


def stock_lines(items: Sequence[OrderLine]) -> list[StockLine]:
    """The stock each order line needs (orders have one line per SKU)."""
    return [StockLine(sku=line.sku, quantity=line.quantity) for line in items]


def rejection_reason(unavailable: Sequence[str]) -> str:
    if not unavailable:
        return "insufficient stock"
    return f"insufficient stock for {', '.join(unavailable)}"


class ReleaseAction(StrEnum):
    RELEASE = "RELEASE"  # restore the reserved lines
    TOMBSTONE = "TOMBSTONE"  # nothing was reserved: refuse any later reservation
    NOTHING = "NOTHING"  # already released, or the reservation was rejected
    REFUSED = "REFUSED"  # the order shipped: the stock is gone (saga.facts.shipped)


def release_action(status: ReservationStatus | None) -> ReleaseAction:
    """What releasing an order's reservation in `status` (None: no item) must do."""
    if status is None:
        return ReleaseAction.TOMBSTONE
    if status is ReservationStatus.RESERVED:
        return ReleaseAction.RELEASE
    return ReleaseAction.NOTHING


@dataclass(frozen=True)
class Reservation:
    """An order's reservation item (plain Python values, as boto3 reads them)."""

    order_id: str
    status: ReservationStatus
    reservation_id: str
    lines: tuple[StockLine, ...]
    reason: str | None = None
    unavailable_skus: tuple[str, ...] = ()
    event_type: str | None = None
    event_detail: str | None = None  # the decision's event, JSON, for replies to duplicates

    @classmethod
    def from_item(cls, item: Mapping[str, Any]) -> Reservation:
        return cls(
            order_id=str(item["orderId"]),
            status=ReservationStatus(item["status"]),
            reservation_id=str(item.get("reservationId") or reservation_id(item["orderId"])),
            lines=tuple(
                StockLine(sku=str(line["sku"]), quantity=int(Decimal(line["quantity"])))
                for line in item.get("items", ())
            ),
            reason=item.get("reason"),
            unavailable_skus=tuple(item.get("unavailableSkus", ())),
            event_type=item.get("eventType"),
            event_detail=item.get("event"),
        )
