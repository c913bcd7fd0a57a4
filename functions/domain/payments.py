"""Payments: a simulated payment provider whose answers are deterministic, and the rules
that keep an order from being charged twice or refunded more than it was charged.

The provider (`decide`) approves or declines a charge from the configuration and the
order alone, so tests and the sandbox can force each outcome:

    PAYMENT_DECLINE_CUSTOMER_PREFIX   customers whose id starts with it are declined
                                      (default "declined-"; empty: none)
    PAYMENT_DECLINE_OVER_CENTS        charges above this many cents are declined
                                      (default: no limit)
    PAYMENT_TRANSIENT_FAILURE_RATE    fraction (0..1) of orders whose first attempts fail
                                      with PaymentProviderUnavailable, a TRANSIENT error
                                      that a retry gets past (default 0)
    PAYMENT_TRANSIENT_FAILURES        how many first attempts fail for those orders
                                      (default 1)
    FAILURE_SEED                      picks which orders are in that fraction (default "0")

An order is in the transient fraction when `chance(seed, order id) < rate`: the same
orders on every run with the same seed. Attempts are counted by the payment record, not
by the caller, so a retry from any source (Lambda, SQS, Step Functions) counts.

A payment's life (one record per order): PENDING (attempting; counts attempts) ->
CHARGED | DECLINED; CHARGED -> REFUNDED (the amount charged, once); PENDING or no record
-> VOID when the order is compensated before it was charged (a late charge is refused).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Final

from domain import chance, number_setting

PAYMENT_KEY_PREFIX: Final = "payment#"
_NAMESPACE: Final = uuid.UUID("6f1c0a52-6c55-4c1e-9a43-3d1f3c2b8e10")

DECLINE_PREFIX_ENV: Final = "PAYMENT_DECLINE_CUSTOMER_PREFIX"
DECLINE_OVER_ENV: Final = "PAYMENT_DECLINE_OVER_CENTS"
TRANSIENT_RATE_ENV: Final = "PAYMENT_TRANSIENT_FAILURE_RATE"
TRANSIENT_FAILURES_ENV: Final = "PAYMENT_TRANSIENT_FAILURES"
SEED_ENV: Final = "FAILURE_SEED"


def payment_key(order_id: str) -> str:
    """The payments table key (`pk`) of an order's payment record."""
    return f"{PAYMENT_KEY_PREFIX}{order_id}"


def payment_id(order_id: str) -> str:
    """The provider's id of an order's charge: derived from the order id, which is also
    the idempotency key the charge is sent with (a provider charges a key once)."""
    return f"pay-{uuid.uuid5(_NAMESPACE, f'payment/{order_id}')}"


def refund_id(order_id: str) -> str:
    return f"refund-{uuid.uuid5(_NAMESPACE, f'refund/{order_id}')}"


class PaymentStatus(StrEnum):
    PENDING = "PENDING"
    CHARGED = "CHARGED"
    DECLINED = "DECLINED"
    REFUNDED = "REFUNDED"
    VOID = "VOID"


DECIDED: Final = frozenset(
    {PaymentStatus.CHARGED, PaymentStatus.DECLINED, PaymentStatus.REFUNDED, PaymentStatus.VOID}
)


class PaymentConfigError(ValueError):
    """A payment setting has a value the provider cannot use."""


class PaymentProviderUnavailable(Exception):
    """The provider did not answer (transient): nothing was charged; retry the payment.
    The class name is what a saga's Retry lists (Lambda reports it as the errorType)."""


@dataclass(frozen=True)
class ProviderConfig:
    """The simulated provider's knobs (see the module doc for the variables)."""

    decline_customer_prefix: str = "declined-"
    decline_over_cents: int | None = None
    transient_failure_rate: float = 0.0
    transient_failures: int = 1
    seed: str = "0"

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> ProviderConfig:
        error = PaymentConfigError
        return cls(
            decline_customer_prefix=env.get(DECLINE_PREFIX_ENV, "declined-"),
            decline_over_cents=number_setting(
                env, DECLINE_OVER_ENV, int, low=0, high=10**15, default=None, error=error
            ),
            transient_failure_rate=number_setting(
                env, TRANSIENT_RATE_ENV, float, low=0.0, high=1.0, default=0.0, error=error
            ),
            transient_failures=number_setting(
                env, TRANSIENT_FAILURES_ENV, int, low=0, high=100, default=1, error=error
            ),
            seed=env.get(SEED_ENV) or "0",
        )


@dataclass(frozen=True)
class Charge:
    """What to charge for an order."""

    order_id: str
    customer_id: str
    amount_cents: int
    currency: str


@dataclass(frozen=True)
class Approved:
    payment_id: str


@dataclass(frozen=True)
class Declined:
    reason: str


def decide(charge: Charge, config: ProviderConfig, attempt: int) -> Approved | Declined:
    """The provider's answer to attempt number `attempt` (1-based) of `charge`.

    Raises PaymentProviderUnavailable for the first `transient_failures` attempts of the
    orders the seed puts in the transient fraction. Otherwise deterministic: the same charge
    gets the same answer every time.
    """
    if (
        config.transient_failure_rate > 0
        and attempt <= config.transient_failures
        and chance(config.seed, charge.order_id) < config.transient_failure_rate
    ):
        raise PaymentProviderUnavailable(
            f"payment provider unavailable for order {charge.order_id} (attempt {attempt}, "
            f"simulated by {TRANSIENT_RATE_ENV}): nothing was charged; retry the payment"
        )
    prefix = config.decline_customer_prefix
    if prefix and charge.customer_id.startswith(prefix):
        return Declined(f"card declined (customer {charge.customer_id})")
    if config.decline_over_cents is not None and charge.amount_cents > config.decline_over_cents:
        return Declined(
            f"amount {charge.amount_cents} exceeds the card limit of "
            f"{config.decline_over_cents} {charge.currency} cents"
        )
    return Approved(payment_id(charge.order_id))


def refund_amount(status: PaymentStatus | None, charged_cents: int) -> int:
    """How much a refund of a payment in `status` must return: everything charged when
    CHARGED, else nothing (declined, void, never charged, or already refunded)."""
    return charged_cents if refund_action(status) is RefundAction.REFUND else 0


class RefundAction(StrEnum):
    REFUND = "REFUND"  # CHARGED -> REFUNDED: return what was charged
    VOID = "VOID"  # PENDING -> VOID: a charge in progress must not complete
    TOMBSTONE = "TOMBSTONE"  # no payment yet: record VOID so a late charge is refused
    NOTHING = "NOTHING"  # declined, void or already refunded
    REFUSED = "REFUSED"  # the order shipped: its charge stands (saga.facts.shipped)


def refund_action(status: PaymentStatus | None) -> RefundAction:
    """What compensating a payment in `status` (None: no record) must do."""
    if status is None:
        return RefundAction.TOMBSTONE
    if status is PaymentStatus.CHARGED:
        return RefundAction.REFUND
    if status is PaymentStatus.PENDING:
        return RefundAction.VOID
    return RefundAction.NOTHING
