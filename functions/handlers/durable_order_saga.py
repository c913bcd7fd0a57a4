"""durable_order_saga: the order saga as one Lambda durable function, the third saga
style beside choreography (events) and orchestration (Step Functions).

Entry:
- `handler(event, context)` (durable): OrderPlaced, as the EventBridge event a rule
  delivers to the function's alias (or `{"order": <detail>}`). Runs reserve -> pay ->
  ship as checkpointed steps (`eventcraft.durable_saga`); a step that fails for good is
  undone itself, then the completed steps latest first (release, refund); the saga's
  final state is recorded (the failure hook, step `on-failure`) and the execution ends
  FAILED with SagaFailed, or SagaCompensationFailed for an operator when an undo gave up.

Only the orchestration differs from the other two styles: each step runs the use case
the Step Functions task of the same step runs (`saga.tasks`: reserve, pay, ship,
release, refund, record_outcome), on the same saga state (the order, `results`, the
caught `error`), so the tables, the events and the order's saga record are the same.
Each finds what an earlier attempt decided (conditional records keyed by the order): a
step run again after a crash or a lost checkpoint, or a second execution started by a
duplicate OrderPlaced, changes nothing.

Retries: a step retries its handlers' transient errors (a concurrent update, a throttled
transaction, the payment provider unavailable) and the AWS SDK's throttling and 5xx
errors (`eventcraft.durable_saga.STEP_ATTEMPTS`); a declined payment, missing stock or an
undeliverable order is a business failure, not retried.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

from aws_durable_execution_sdk_python import DurableContext, durable_execution

from domain.payments import PaymentProviderUnavailable
from eventcraft.durable_saga import DurableSaga, SagaStep, StepCall, StepFailure
from eventcraft.outbox import TransactionConflictError
from saga import tasks
from saga.store import ConcurrentUpdateError

# The union of the step tasks' ACCESS (tests/functions/handlers: kept equal).
ACCESS: dict[str, frozenset[str]] = {
    "INVENTORY_TABLE": frozenset(
        {
            "dynamodb:ConditionCheckItem",
            "dynamodb:GetItem",
            "dynamodb:PutItem",
            "dynamodb:UpdateItem",
        }
    ),
    "ORDERS_TABLE": frozenset({"dynamodb:GetItem", "dynamodb:PutItem"}),
    "OUTBOX_TABLE": frozenset({"dynamodb:PutItem"}),
    "PAYMENTS_TABLE": frozenset(
        {
            "dynamodb:ConditionCheckItem",
            "dynamodb:GetItem",
            "dynamodb:PutItem",
            "dynamodb:UpdateItem",
        }
    ),
    "SHIPMENTS_TABLE": frozenset(
        {"dynamodb:ConditionCheckItem", "dynamodb:GetItem", "dynamodb:PutItem"}
    ),
}

# What a concurrent writer or a throttled transaction raises: nothing was written.
_CONFLICTS: tuple[type[Exception], ...] = (ConcurrentUpdateError, TransactionConflictError)

Task = Callable[[Mapping[str, Any]], dict[str, Any]]


def saga_state(call: StepCall) -> dict[str, Any]:
    """The Step Functions saga state of this call: the order (the execution's input: the
    OrderPlaced event, as a Step Functions execution's), the completed steps' `results`,
    and for a compensation or the failure hook the caught `error` as Step Functions
    gives it ({"Error": type, "Cause": the Lambda error JSON})."""
    state: dict[str, Any] = {**call.input, "results": dict(call.results)}
    if call.failure is not None:
        state["error"] = caught_error(call.failure)
    return state


def caught_error(failure: StepFailure) -> dict[str, str]:
    """A step failure as Step Functions' `$.error` of a Lambda task."""
    error_type = failure.error_type.rsplit(".", 1)[-1]  # the SDK records module.Class
    cause = json.dumps({"errorType": error_type, "errorMessage": failure.message})
    return {"Error": error_type, "Cause": cause}


def _run(task: Task) -> Callable[[StepCall], dict[str, Any]]:
    def action(call: StepCall) -> dict[str, Any]:
        return task(saga_state(call))

    return action


ORDER_SAGA = DurableSaga(
    "order",
    [
        SagaStep(
            "reserve",
            _run(tasks.reserve_step),
            compensate=_run(tasks.release_step),
            transient_errors=_CONFLICTS,
        ),
        SagaStep(
            "pay",
            _run(tasks.pay_step),
            compensate=_run(tasks.refund_step),
            transient_errors=(PaymentProviderUnavailable, *_CONFLICTS),
        ),
        # Nothing undoes a shipment: a failed one undoes the payment and the stock.
        SagaStep("ship", _run(tasks.ship_step), transient_errors=_CONFLICTS),
    ],
    # The final state where no step recorded one (e.g. CANCELLED after reserve failed).
    on_failure=_run(tasks.record_outcome),
)


@durable_execution
def handler(event: dict[str, Any], context: DurableContext) -> dict[str, Any]:
    """Run the order's saga (see the module doc); its input is the OrderPlaced event."""
    return ORDER_SAGA.run(context, dict(event))
