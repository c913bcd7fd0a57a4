"""A valid sample of every event, as its producer would emit it.

Used to check that every rule pattern matches what producers really send, and by tests.
Deterministic: the same call returns the same bytes.
"""

from __future__ import annotations

import uuid
from typing import Any, Final

from contracts.registry import model_for

_TIME: Final = "2025-01-15T10:30:00Z"
_ORDER: Final = "order-0001"
_CUSTOMER: Final = "customer-0001"
_PASSED: Final = {"passed": True, "reason": None, "quoteCents": None}

# Per detail-type, the fields beyond eventId/occurredAt/version/orderId/customerId (every
# sample carries the same order and customer), camelCase as on the wire.
_FIELDS: Final[dict[str, dict[str, Any]]] = {
    "OrderPlaced": {
        "items": [
            {"sku": "sku-red-mug", "quantity": 2, "unitPriceCents": 1250},
            {"sku": "sku-blue-pot", "quantity": 1, "unitPriceCents": 4999},
        ],
        "totalCents": 7499,
        "currency": "USD",
    },
    "InventoryReserved": {
        "reservationId": "reservation-0001",
        "items": [{"sku": "sku-red-mug", "quantity": 2}, {"sku": "sku-blue-pot", "quantity": 1}],
    },
    "InventoryReservationFailed": {
        "reason": "insufficient stock",
        "unavailableSkus": ["sku-blue-pot"],
    },
    "PaymentProcessed": {"paymentId": "payment-0001", "amountCents": 7499, "currency": "USD"},
    "PaymentFailed": {"reason": "card declined", "amountCents": 7499, "currency": "USD"},
    "OrderShipped": {
        "shipmentId": "shipment-0001",
        "carrier": "UPS",
        "trackingNumber": "1Z999AA10123456784",
    },
    "ShippingFailed": {"reason": "address not deliverable"},
    "PaymentRefunded": {
        "paymentId": "payment-0001",
        "refundId": "refund-0001",
        "amountCents": 7499,
        "currency": "USD",
    },
    "InventoryReleased": {
        "reservationId": "reservation-0001",
        "items": [{"sku": "sku-red-mug", "quantity": 2}, {"sku": "sku-blue-pot", "quantity": 1}],
    },
    "OrderCancelled": {"reason": "payment failed: card declined", "failedStep": "payment"},
    "OrderCompleted": {},
    "OrderEnriched": {
        "customerTier": "gold",
        "customerName": "Ada Lovelace",
        "totalCents": 7499,
        "currency": "USD",
    },
    "HighValueOrderFlagged": {
        "totalCents": 250000,
        "currency": "USD",
        "thresholdCents": 100000,
    },
    "CheckCompleted": {"check": "credit", "result": _PASSED},
    "AllChecksComplete": {
        "inventory": _PASSED,
        "credit": _PASSED,
        "shippingQuote": {"passed": True, "reason": None, "quoteCents": 899},
    },
}


def sample_detail(detail_type: str, **overrides: Any) -> dict[str, Any]:
    """A valid `detail` of `detail_type` at its current version, as the producer emits it.

    `overrides` replace top-level fields by their wire (camelCase) name, e.g.
    `sample_detail("OrderPlaced", orderId="o-2")`; the result is validated, so an override
    that breaks the contract raises pydantic.ValidationError.
    """
    model = model_for(detail_type)
    base = {
        "eventId": str(uuid.uuid5(uuid.NAMESPACE_URL, f"order-saga/{detail_type}")),
        "occurredAt": _TIME,
        "orderId": _ORDER,
        "customerId": _CUSTOMER,
        **_FIELDS[detail_type],
    }
    return model.model_validate({**base, **overrides}).to_detail()


def sample_event(detail_type: str, **overrides: Any) -> dict[str, Any]:
    """A whole EventBridge event (as delivered to targets) carrying `sample_detail`."""
    model = model_for(detail_type)
    detail = sample_detail(detail_type, **overrides)
    return {
        "version": "0",
        "id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"order-saga/envelope/{detail['eventId']}")),
        "detail-type": model.DETAIL_TYPE,
        "source": model.SOURCE,
        "account": "123456789012",
        "time": detail["occurredAt"],
        "region": "us-east-1",
        "resources": [],
        "detail": detail,
    }
