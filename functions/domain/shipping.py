"""Shipping: a simulated carrier whose answers are deterministic, and one shipment
decision per order.

The carrier (`decide`) ships or refuses an order from the configuration and the order
alone, so tests and the sandbox can force each outcome:

    SHIPPING_FAIL_CUSTOMER_PREFIX   customers whose id starts with it cannot be shipped to
                                    (default "undeliverable-"; empty: none)
    SHIPPING_FAILURE_RATE           fraction (0..1) of orders that cannot be shipped
                                    (default 0), chosen by `chance(FAILURE_SEED, order id)`
    FAILURE_SEED                    (default "0")
    SHIPPING_CARRIER                the carrier's name (default "UPS")

A refusal is a business outcome (ShippingFailed: the saga refunds and releases), not an
error to retry: the same order is refused every time.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Final

from domain import chance, number_setting

SHIPMENT_KEY_PREFIX: Final = "shipment#"

FAIL_PREFIX_ENV: Final = "SHIPPING_FAIL_CUSTOMER_PREFIX"
FAILURE_RATE_ENV: Final = "SHIPPING_FAILURE_RATE"
CARRIER_ENV: Final = "SHIPPING_CARRIER"
SEED_ENV: Final = "FAILURE_SEED"


def shipment_key(order_id: str) -> str:
    """The shipments table key (`pk`) of an order's shipment record."""
    return f"{SHIPMENT_KEY_PREFIX}{order_id}"


class ShipmentStatus(StrEnum):
    SHIPPED = "SHIPPED"
    FAILED = "FAILED"


class ShippingConfigError(ValueError):
    """A shipping setting has a value the carrier cannot use."""


@dataclass(frozen=True)
class CarrierConfig:
    fail_customer_prefix: str = "undeliverable-"
    failure_rate: float = 0.0
    seed: str = "0"
    carrier: str = "UPS"

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> CarrierConfig:
        return cls(
            fail_customer_prefix=env.get(FAIL_PREFIX_ENV, "undeliverable-"),
            failure_rate=number_setting(
                env, FAILURE_RATE_ENV, float, low=0, high=1, default=0.0, error=ShippingConfigError
            ),
            seed=env.get(SEED_ENV) or "0",
            carrier=env.get(CARRIER_ENV) or "UPS",
        )


@dataclass(frozen=True)
class Shipped:
    shipment_id: str
    carrier: str
    tracking_number: str


@dataclass(frozen=True)
class Undeliverable:
    reason: str


def decide(order_id: str, customer_id: str, config: CarrierConfig) -> Shipped | Undeliverable:
    """The carrier's answer for an order: the same every time for the same order."""
    prefix = config.fail_customer_prefix
    if prefix and customer_id.startswith(prefix):
        return Undeliverable(f"address not deliverable (customer {customer_id})")
    if config.failure_rate > 0 and chance(config.seed, f"ship/{order_id}") < config.failure_rate:
        return Undeliverable(f"no carrier capacity for order {order_id} (simulated)")
    digest = hashlib.sha256(f"shipment/{order_id}".encode()).hexdigest().upper()
    return Shipped(
        shipment_id=f"shipment-{digest[:12].lower()}",
        carrier=config.carrier,
        tracking_number=f"1Z{digest[:16]}",
    )
