"""The join of the fork/join: CheckCompleted x 3 -> exactly one AllChecksComplete.

Entries:
- `handler(event, context)` (choreography): CheckCompleted events, as an SQS batch
  (rule -> queue -> this function, ReportBatchItemFailures on: the recommended wiring)
  or one EventBridge event (rule -> this function). Each result is recorded in
  CHECKS_TABLE (key `joinId` = orderId, `eventcraft.aggregation`'s layout) with ONE
  conditional UpdateItem (ReturnValues ALL_NEW); the delivery that completes the join
  claims it, publishes AllChecksComplete on EVENT_BUS_NAME and marks it emitted. Each
  result keeps the customerId its CheckCompleted carried; AllChecksComplete names it.
- `task(event, context)` (orchestration: the aggregate task after the Parallel state of
  `pulumi_eventcraft.saga.parallel_checks`): the state with `$.checks.<check>` results -> the
  AllChecksComplete detail (its `allPassed` tells the state machine what to do next).

Idempotency: the join's conditional writes (not Powertools). A redelivered result is a
no-op (the first result of a check stands); of concurrent deliveries completing the join,
exactly one wins the claim and emits. If the emitter dies before marking the join
emitted, a redelivery takes over once the claim expires (60 s) and emits the same event
(same eventId, time and content: `domain.checks.all_checks_complete`), which consumers
deduplicate; until then such a redelivery fails with CompletionPendingError so that it
is retried, never dropped. That is why SQS is the recommended wiring: its retry comes
after the visibility timeout, within the message's retention.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Final

from contracts import CHECKS, CheckCompleted
from domain import checks
from eventcraft import envelopes
from eventcraft.aggregation import Aggregator, JoinState
from eventcraft.publisher import Publisher
from eventcraft.settings import env

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse

ACCESS: Final[dict[str, frozenset[str]]] = {
    # record / claim / mark emitted / release: all UpdateItem (no read).
    "CHECKS_TABLE": frozenset({"dynamodb:UpdateItem"}),
    "EVENT_BUS_NAME": frozenset({"events:PutEvents"}),
}
CHECKS_TABLE_ENV: Final = "CHECKS_TABLE"


@functools.cache
def _aggregator() -> Aggregator:
    return Aggregator(env(CHECKS_TABLE_ENV), required=CHECKS)


@functools.cache
def _publisher() -> Publisher:
    return Publisher()


def _emit(state: JoinState) -> None:
    _publisher().publish([checks.all_checks_complete(state)])


def record_check(event: CheckCompleted) -> dict[str, Any]:
    """Record one check's result; publish AllChecksComplete if it completes the join."""
    outcome = _aggregator().record_and_emit(event.order_id, checks.join_result(event), _emit)
    return {
        "orderId": event.order_id,
        "check": event.check,
        "recorded": outcome.recorded,
        "completed": outcome.just_completed,
        "missing": sorted(outcome.state.missing),
    }


def handler(event: Mapping[str, Any], context: Any) -> PartialItemFailureResponse | dict[str, Any]:
    """CheckCompleted as an SQS batch (partial failures; a record that will not succeed
    goes to the queue's DLQ with its error) or one EventBridge event."""
    return envelopes.dispatch(event, context, record_check, model=CheckCompleted, dead_letter=True)


def task(event: Mapping[str, Any], context: object) -> dict[str, Any]:
    """The aggregate task: `$.checks` (one result per branch) -> AllChecksComplete detail."""
    from saga.sfn_state import order_from_state

    order = order_from_state(event)
    results = event.get("checks")
    return checks.combine(
        order.order_id, order.customer_id, results if isinstance(results, Mapping) else {}
    ).to_detail()
