"""Running the saga's compensations (`inventory_step.release`, `payment_step.refund`):
as a Step Functions task, or for a reservation / charge that arrived after the saga
failed (choreography)."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from contracts import OrderPlaced
from domain.orders import Compensation, SagaFact
from saga.sfn_state import aborted_from_state, order_from_state

logger = logging.getLogger(__name__)


class _Outcome(Protocol):
    def to_result(self) -> dict[str, Any]: ...


class CompensationUseCase(Protocol):
    """A compensation's use case: `inventory_step.release`, `payment_step.refund`."""

    def __call__(
        self,
        order_id: str,
        *,
        reason: str,
        record_saga: bool = ...,
        order: OrderPlaced | None = ...,
        facts: Sequence[SagaFact] = ...,
    ) -> _Outcome: ...


def compensation_task(state: Mapping[str, Any], compensate: CompensationUseCase) -> dict[str, Any]:
    """A Step Functions compensation task: `compensate` the order of the saga `state`,
    recording the caught `$.error` (as the failed step's fact) and the compensation in the
    order's saga state in the same transaction; its result. Never fails for "nothing to
    undo"."""
    order = order_from_state(state)
    aborted = aborted_from_state(state, order.order_id)
    reason = aborted.reason if aborted and aborted.reason else "saga compensation"
    outcome = compensate(
        order.order_id,
        reason=reason,
        record_saga=True,
        order=order,
        facts=[aborted] if aborted else [],
    )
    return outcome.to_result()


def compensate_late(
    order_id: str, compensations: frozenset[Compensation], *, reason: str, customer_id: str
) -> None:
    """Undo a reservation / charge that showed up after the saga failed."""
    if "release_inventory" in compensations:
        from saga.inventory_step import release  # lazy: only on this rare path

        logger.warning("releasing the late reservation of cancelled order %s", order_id)
        release(order_id, reason=reason, customer_id=customer_id)
    if "refund_payment" in compensations:
        from saga.payment_step import refund

        logger.warning("refunding the late charge of cancelled order %s", order_id)
        refund(order_id, reason=reason, customer_id=customer_id)
