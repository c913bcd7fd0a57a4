"""The ASL that the saga builder and the fork/join helper produce (structure, no AWS)."""

from __future__ import annotations

from typing import Any

import pulumi
import pytest

from pulumi_eventcraft.saga import (
    AWS_SDK_TRANSIENT_ERRORS,
    COMPENSATION_RETRY,
    STEP_RETRY,
    TIMEOUT_ERRORS,
    TRANSIENT_ERRORS,
    TRANSIENT_LAMBDA_ERRORS,
    RetryPolicy,
    SagaStep,
    function_arns,
    parallel_checks,
    saga_definition,
)
from pulumi_eventcraft.state_machine import validate_definition


def fn(name: str) -> str:
    return f"arn:aws:lambda:us-east-1:123456789012:function:{name}"


def order_saga(*, own: bool = False, **kwargs: Any) -> dict[str, Any]:
    """reserve, pay (with compensations), ship. `own`: SagaStep.compensate_own_failure
    (these tests pin False, the behaviour that trusts a failed step to have done nothing;
    the default, True, is tested in the "own compensation" tests below)."""
    return saga_definition(
        [
            SagaStep(
                name="reserve",
                task=fn("reserve"),
                compensation=fn("release"),
                compensate_own_failure=own,
            ),
            SagaStep(
                name="pay", task=fn("pay"), compensation=fn("refund"), compensate_own_failure=own
            ),
            SagaStep(name="ship", task=fn("ship")),
        ],
        **kwargs,
    )


TRANSIENT_RETRY = {
    "ErrorEquals": list(TRANSIENT_ERRORS),
    "IntervalSeconds": 1,
    "MaxAttempts": 12,
    "BackoffRate": 2.0,
    "MaxDelaySeconds": 120,
    "JitterStrategy": "FULL",
}


def test_steps_run_in_order_and_end_in_succeed() -> None:
    d = order_saga()
    states = d["States"]
    assert d["StartAt"] == "reserve"
    assert [states[s]["Next"] for s in ("reserve", "pay", "ship")] == [
        "pay",
        "ship",
        "SagaSucceeded",
    ]
    assert states["SagaSucceeded"] == {"Type": "Succeed"}
    for name in ("reserve", "pay", "ship"):
        assert states[name]["Type"] == "Task"
        assert states[name]["Resource"] == fn(name)
        assert states[name]["ResultPath"] == f"$.results.{name}"
        assert "TimeoutSeconds" not in states[name]
    validate_definition(d)  # every target exists, nothing unreachable


def test_steps_retry_only_transient_errors_with_capped_jittered_backoff() -> None:
    states = order_saga()["States"]
    for name in ("reserve", "pay", "ship"):
        assert states[name]["Retry"] == [TRANSIENT_RETRY]
    # The Lambda service's faults, and a throttled or failed AWS call in the handler (the
    # SDK's exception class name is the task's error name).
    assert set(TRANSIENT_LAMBDA_ERRORS) < set(TRANSIENT_ERRORS)
    assert "ProvisionedThroughputExceededException" in TRANSIENT_ERRORS
    # Business errors are never retried: no retrier matches everything, and an AWS error
    # that can mean a hard limit is not taken for a throttle.
    for never in ("States.ALL", "States.TaskFailed", "LimitExceededException", "ClientError"):
        assert never not in TRANSIENT_ERRORS
    # Patient: the waits add up to about 12 minutes (an outage of DynamoDB of 10 minutes
    # does not fail the saga), each capped at 2 minutes.
    assert STEP_RETRY.waits() == [1, 2, 4, 8, 16, 32, 64, 120, 120, 120, 120, 120]
    assert 10 * 60 < sum(STEP_RETRY.waits()) < 13 * 60


def test_a_failure_compensates_the_steps_completed_before_it_in_reverse_order() -> None:
    states = order_saga()["States"]

    def catch_all(state: str) -> dict[str, Any]:
        (catch,) = [c for c in states[state]["Catch"] if c["ErrorEquals"] == ["States.ALL"]]
        assert catch["ResultPath"] == "$.error"
        return catch

    # The first step has nothing before it to undo.
    assert catch_all("reserve")["Next"] == "SagaFailed"
    assert catch_all("pay")["Next"] == "CompensateReserve"
    assert catch_all("ship")["Next"] == "CompensatePay"
    # The chain: latest compensation first, then the outcome.
    assert states["CompensatePay"]["Resource"] == fn("refund")
    assert states["CompensatePay"]["Next"] == "CompensateReserve"
    assert states["CompensateReserve"]["Resource"] == fn("release")
    assert states["CompensateReserve"]["Next"] == "Compensated"
    assert states["Compensated"] == {
        "Type": "Choice",
        "Comment": "Fail louder when a compensation gave up after its retries",
        "Choices": [
            {"Variable": "$.compensationErrors", "IsPresent": True, "Next": "CompensationFailed"}
        ],
        "Default": "SagaFailed",
    }


def test_a_timed_out_step_is_compensated_itself() -> None:
    states = order_saga()["States"]
    assert states["pay"]["Catch"][0] == {
        "ErrorEquals": [
            "States.Timeout",
            "Sandbox.Timedout",
            "Lambda.Unknown",
            "Lambda.ClientExecutionTimeoutException",
        ],
        "ResultPath": "$.error",
        "Next": "CompensatePay",
    }
    assert states["reserve"]["Catch"][0]["Next"] == "CompensateReserve"
    # ship has no compensation: a timeout is handled like any error.
    assert [c["ErrorEquals"] for c in states["ship"]["Catch"]] == [["States.ALL"]]


def test_compensations_retry_every_error_and_carry_on_when_they_give_up() -> None:
    states = order_saga()["States"]
    for step, following in (("pay", "CompensateReserve"), ("reserve", "Compensated")):
        comp = states[f"Compensate{step.capitalize()}"]
        assert comp["Retry"] == [
            {
                "ErrorEquals": ["States.ALL"],
                "IntervalSeconds": 1,
                "MaxAttempts": 20,
                "BackoffRate": 2.0,
                "MaxDelaySeconds": 300,
                "JitterStrategy": "FULL",
            }
        ]
        assert comp["ResultPath"] == f"$.compensations.{step}"
        assert comp["Catch"] == [
            {
                "ErrorEquals": ["States.ALL"],
                "ResultPath": f"$.compensationErrors.{step}",
                "Next": following,
            }
        ]
    assert states["CompensationFailed"]["Type"] == "Fail"
    assert states["CompensationFailed"]["Error"] == "SagaCompensationFailed"


def test_the_saga_fails_with_saga_failed_and_the_caught_cause() -> None:
    assert order_saga()["States"]["SagaFailed"] == {
        "Type": "Fail",
        "Error": "SagaFailed",
        "CausePath": "$.error.Cause",
    }
    static = order_saga(fail_cause="order could not be completed")["States"]["SagaFailed"]
    assert static == {
        "Type": "Fail",
        "Error": "SagaFailed",
        "Cause": "order could not be completed",
    }


def test_steps_without_compensation_are_skipped_in_the_chain() -> None:
    d = saga_definition(
        [
            SagaStep(name="reserve", task=fn("reserve"), compensation=fn("release")),
            SagaStep(name="notify", task=fn("notify")),
            SagaStep(name="pay", task=fn("pay")),
        ]
    )
    states = d["States"]
    assert states["pay"]["Catch"][-1]["Next"] == "CompensateReserve"
    assert states["notify"]["Catch"][-1]["Next"] == "CompensateReserve"
    assert "CompensateNotify" not in states
    validate_definition(d)


def test_a_saga_with_no_compensations_has_no_compensation_states() -> None:
    d = saga_definition([SagaStep(name="a", task=fn("a")), SagaStep(name="b", task=fn("b"))])
    assert set(d["States"]) == {"a", "b", "SagaSucceeded", "SagaFailed"}
    assert d["States"]["b"]["Catch"] == [
        {"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": "SagaFailed"}
    ]
    validate_definition(d)


def test_step_options_reach_the_task() -> None:
    step = SagaStep(
        name="pay",
        task=fn("pay"),
        retry=RetryPolicy(max_attempts=0),
        result_path="$.payment",
        timeout_seconds=30,
    )
    (state,) = [s for n, s in saga_definition([step])["States"].items() if n == "pay"]
    assert "Retry" not in state  # max_attempts=0 disables the retrier
    assert state["ResultPath"] == "$.payment"
    assert state["TimeoutSeconds"] == 30


def test_output_arns_are_kept_for_the_state_machine_to_render() -> None:
    arn = pulumi.Output.from_input(fn("pay"))
    step = SagaStep(name="pay", task=arn, compensation=fn("refund"))
    d = saga_definition([step])
    assert d["States"]["pay"]["Resource"] is arn
    assert function_arns([step]) == [arn, fn("refund")]


def test_function_arns_lists_tasks_then_compensations() -> None:
    steps = [
        SagaStep(name="reserve", task=fn("reserve"), compensation=fn("release")),
        SagaStep(name="ship", task=fn("ship")),
    ]
    assert function_arns(steps) == [fn("reserve"), fn("ship"), fn("release")]


def test_retry_policy_waits_are_capped() -> None:
    assert RetryPolicy().waits() == [1, 2, 4]
    assert RetryPolicy(max_attempts=6, interval_seconds=5, max_delay_seconds=30).waits() == [
        5,
        10,
        20,
        30,
        30,
        30,
    ]
    # An undo that gives up leaves the system inconsistent: it outlasts an hour of outage.
    assert COMPENSATION_RETRY.max_attempts == 20
    assert COMPENSATION_RETRY.waits()[-1] == 300
    assert 60 * 60 < sum(COMPENSATION_RETRY.waits()) < 65 * 60


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"errors": []}, r"RetryPolicy.errors must be a non-empty list"),
        ({"errors": "States.ALL"}, r"RetryPolicy.errors must be a non-empty list"),
        (
            {"errors": ["States.ALL", "Lambda.ServiceException"]},
            r"'States.ALL' must be the only error name",
        ),
        ({"interval_seconds": 0}, r"RetryPolicy.interval_seconds must be 1\.\.99999999"),
        ({"max_attempts": -1}, r"RetryPolicy.max_attempts must be 0\.\.99999999"),
        ({"backoff_rate": 0.5}, r"RetryPolicy.backoff_rate must be >= 1.0, got 0.5"),
        (
            {"interval_seconds": 10, "max_delay_seconds": 5},
            r"RetryPolicy.max_delay_seconds must be >= interval_seconds \(10\)",
        ),
        ({"jitter": "HALF"}, r"RetryPolicy.jitter must be 'FULL' or 'NONE', got 'HALF'"),
    ],
)
def test_retry_policy_rejects_bad_values(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        RetryPolicy(**kwargs)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"name": "reserve-stock"}, r"SagaStep.name must be 1-70 characters: a letter, then"),
        ({"name": "1st"}, r"SagaStep.name must be 1-70 characters.*got '1st'"),
        ({"name": "a" * 71}, r"SagaStep.name must be 1-70 characters"),
        ({"name": ""}, r"SagaStep.name must be 1-70 characters"),
        ({"task": "reserve"}, r"SagaStep 'reserve': task must be a Lambda function ARN"),
        (
            {"compensation": "arn:aws:sqs:us-east-1:123456789012:q"},
            r"SagaStep 'reserve': compensation must be a Lambda function ARN",
        ),
        ({"result_path": "results.x"}, r"SagaStep 'reserve': result_path must be a JSONPath"),
        ({"result_path": "$"}, r"result_path '\$' would replace the saga's state"),
        ({"timeout_seconds": 0}, r"SagaStep 'reserve': timeout_seconds must be 1\.\.99999999"),
    ],
)
def test_saga_step_rejects_bad_args(kwargs: dict[str, Any], message: str) -> None:
    args: dict[str, Any] = {"name": "reserve", "task": fn("reserve"), **kwargs}
    with pytest.raises(ValueError, match=message):
        SagaStep(**args)


def test_a_70_character_name_fits_the_80_character_state_limit() -> None:
    step = SagaStep(name="a" * 70, task=fn("a"), compensation=fn("b"))
    assert len(step.compensation_state) == 80


def test_saga_definition_rejects_no_steps() -> None:
    with pytest.raises(ValueError, match="steps must be a non-empty sequence of SagaStep"):
        saga_definition([])


def test_saga_definition_rejects_duplicate_names() -> None:
    steps = [SagaStep(name="pay", task=fn("a")), SagaStep(name="pay", task=fn("b"))]
    with pytest.raises(ValueError, match=r"duplicate state name 'pay'.*step names must be unique"):
        saga_definition(steps)


def test_saga_definition_rejects_a_step_colliding_with_a_compensation_state() -> None:
    steps = [
        SagaStep(name="pay", task=fn("a"), compensation=fn("c")),
        SagaStep(name="ComparePay", task=fn("b")),
        SagaStep(name="CompensatePay", task=fn("b")),
    ]
    with pytest.raises(ValueError, match=r"duplicate state name 'CompensatePay'"):
        saga_definition(steps)


def test_saga_definition_rejects_reserved_state_names() -> None:
    with pytest.raises(ValueError, match=r"state name 'SagaFailed' is reserved"):
        saga_definition([SagaStep(name="SagaFailed", task=fn("a"))])


def test_saga_definition_rejects_shared_result_paths() -> None:
    steps = [
        SagaStep(name="a", task=fn("a"), result_path="$.out"),
        SagaStep(name="b", task=fn("b"), result_path="$.out"),
    ]
    with pytest.raises(ValueError, match=r"result paths must be unique"):
        saga_definition(steps)


def test_saga_definition_rejects_an_empty_fail_cause() -> None:
    with pytest.raises(ValueError, match=r"fail_cause must be None or a non-empty string"):
        order_saga(fail_cause=" ")


def test_parallel_checks_forks_then_joins_named_results_into_the_aggregate() -> None:
    d = parallel_checks(
        {"inventory": fn("inventory"), "credit": fn("credit"), "shipping": fn("quote")},
        fn("aggregate"),
    )
    validate_definition(d)
    assert d["StartAt"] == "Checks"
    checks = d["States"]["Checks"]
    assert checks["Type"] == "Parallel"
    assert checks["Branches"] == [
        {
            "StartAt": branch,
            "States": {
                branch: {
                    "Type": "Task",
                    "Resource": fn(target),
                    "Retry": [TRANSIENT_RETRY],
                    "End": True,
                }
            },
        }
        for branch, target in (
            ("inventory", "inventory"),
            ("credit", "credit"),
            ("shipping", "quote"),
        )
    ]
    assert checks["ResultSelector"] == {
        "inventory.$": "$[0]",
        "credit.$": "$[1]",
        "shipping.$": "$[2]",
    }
    assert checks["ResultPath"] == "$.checks"
    assert checks["Next"] == "Aggregate"
    assert d["States"]["Aggregate"] == {
        "Type": "Task",
        "Resource": fn("aggregate"),
        "Retry": [TRANSIENT_RETRY],
        "ResultPath": "$",
        "End": True,
    }


def test_parallel_checks_options() -> None:
    d = parallel_checks(
        {"a": fn("a")},
        fn("agg"),
        "$.gathered",
        name="Fork",
        aggregate_name="Join",
        aggregate_result_path="$.decision",
        retry=RetryPolicy(max_attempts=0),
    )
    assert d["StartAt"] == "Fork"
    assert d["States"]["Fork"]["ResultPath"] == "$.gathered"
    assert d["States"]["Fork"]["Next"] == "Join"
    assert d["States"]["Join"] == {
        "Type": "Task",
        "Resource": fn("agg"),
        "ResultPath": "$.decision",
        "End": True,
    }


@pytest.mark.parametrize(
    ("args", "kwargs", "message"),
    [
        (({}, fn("agg")), {}, r"branches must map at least one name to a Lambda ARN"),
        (({"a-b": fn("a")}, fn("agg")), {}, r"branch name must be 1-80 characters"),
        (({"a": "nope"}, fn("agg")), {}, r"branch 'a' must be a Lambda function ARN"),
        (({"a": fn("a")}, "nope"), {}, r"parallel_checks: aggregate must be a Lambda function"),
        (({"a": fn("a")}, fn("agg"), "checks"), {}, r"result_path must be a JSONPath"),
        (
            ({"a": fn("a")}, fn("agg")),
            {"name": "X", "aggregate_name": "X"},
            r"name and aggregate_name must differ, both 'X'",
        ),
    ],
)
def test_parallel_checks_rejects_bad_args(
    args: tuple[Any, ...], kwargs: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        parallel_checks(*args, **kwargs)


# --------------------------------------------- own compensation, transient errors, hooks


def test_by_default_a_failed_step_runs_its_own_compensation_first() -> None:
    d = order_saga(own=True)
    states = d["States"]
    # Any error (a business failure may have been recorded before it was raised, a
    # Lambda may time out after its write): the step's own undo, then the earlier ones.
    assert states["reserve"]["Catch"] == [
        {"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": "CompensateReserve"}
    ]
    assert states["pay"]["Catch"] == [
        {"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": "CompensatePay"}
    ]
    # A step without a compensation enters the chain at the latest earlier one.
    assert states["ship"]["Catch"] == [
        {"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": "CompensatePay"}
    ]
    assert states["CompensatePay"]["Next"] == "CompensateReserve"
    assert states["CompensateReserve"]["Next"] == "Compensated"
    validate_definition(d)


def test_compensate_own_failure_is_on_unless_turned_off() -> None:
    assert SagaStep(name="pay", task=fn("pay"), compensation=fn("refund")).compensates_itself
    assert not SagaStep(name="pay", task=fn("pay")).compensates_itself
    off = SagaStep(
        name="pay", task=fn("pay"), compensation=fn("refund"), compensate_own_failure=False
    )
    assert not off.compensates_itself


def test_handler_transient_errors_join_the_steps_retrier() -> None:
    step = SagaStep(
        name="pay",
        task=fn("pay"),
        transient_errors=("PaymentProviderUnavailable", "ConcurrentUpdateError"),
    )
    expected = [*TRANSIENT_ERRORS, "PaymentProviderUnavailable", "ConcurrentUpdateError"]
    assert list(step.retry.errors) == expected
    (state,) = [s for n, s in saga_definition([step])["States"].items() if n == "pay"]
    assert state["Retry"] == [{**TRANSIENT_RETRY, "ErrorEquals": expected}]
    # The rest of the policy is the step's own.
    slow = SagaStep(
        name="pay",
        task=fn("pay"),
        retry=RetryPolicy(max_attempts=5, interval_seconds=2),
        transient_errors=("PaymentProviderUnavailable",),
    )
    assert slow.retry.max_attempts == 5
    assert slow.retry.interval_seconds == 2
    assert slow.retry.errors[-1] == "PaymentProviderUnavailable"


def test_an_idempotent_step_retries_a_lost_reply_instead_of_compensating_it() -> None:
    step = SagaStep(
        name="ship",
        task=fn("ship"),
        transient_errors=("ConcurrentUpdateError",),
        idempotent=True,
    )
    expected = [*TRANSIENT_ERRORS, "ConcurrentUpdateError", *TIMEOUT_ERRORS]
    assert "Sandbox.Timedout" in expected and "States.Timeout" in expected
    (state,) = [s for n, s in saga_definition([step])["States"].items() if n == "ship"]
    assert state["Retry"] == [{**TRANSIENT_RETRY, "ErrorEquals": expected}]
    # Not idempotent (the default): a timeout is not retried, it goes to the catch.
    plain = SagaStep(name="ship", task=fn("ship"))
    assert not set(TIMEOUT_ERRORS) & set(plain.retry.errors)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (
            {"idempotent": True, "retry": RetryPolicy(max_attempts=0)},
            r"'pay': idempotent steps retry a timed-out attempt, but retry.max_attempts is 0",
        ),
        (
            {"idempotent": True, "retry": RetryPolicy(errors=["States.ALL"])},
            r"'pay': idempotent: retry already retries 'States.ALL'",
        ),
    ],
)
def test_idempotent_needs_a_retry_that_can_add_the_timeouts(
    kwargs: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        SagaStep(name="pay", task=fn("pay"), **kwargs)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"transient_errors": "Oops"}, r"transient_errors must be a list of error names"),
        ({"transient_errors": ["States.Timeout"]}, r"'States.Timeout' is a Step Functions error"),
        ({"transient_errors": [""]}, r"'' is not an error name"),
        ({"transient_errors": ["A", "A"]}, r"'A' is listed twice"),
        (
            {"transient_errors": ["Lambda.ServiceException"]},
            r"'Lambda.ServiceException' is listed twice \(or already in retry\)",
        ),
        (
            {"transient_errors": ["A"], "retry": RetryPolicy(max_attempts=0)},
            r"retry.max_attempts is 0",
        ),
        (
            {"transient_errors": ["A"], "retry": RetryPolicy(errors=["States.ALL"])},
            r"retry already retries 'States.ALL'",
        ),
    ],
)
def test_transient_errors_are_checked(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        SagaStep(name="pay", task=fn("pay"), **kwargs)


def test_the_failure_hook_runs_after_the_compensations_and_before_the_saga_fails() -> None:
    d = order_saga(own=True, on_failure=fn("recordOutcome"))
    states = d["States"]
    validate_definition(d)
    assert states["CompensateReserve"]["Next"] == "RecordFailure"
    assert states["CompensateReserve"]["Catch"][0]["Next"] == "RecordFailure"
    assert states["RecordFailure"] == {
        "Type": "Task",
        "Comment": "Record the outcome of the saga that failed, once its compensations ran",
        "Resource": fn("recordOutcome"),
        "ResultPath": "$.outcome",
        "Retry": [
            {
                "ErrorEquals": ["States.ALL"],
                "IntervalSeconds": 1,
                "MaxAttempts": 20,
                "BackoffRate": 2.0,
                "MaxDelaySeconds": 300,
                "JitterStrategy": "FULL",
            }
        ],
        "Catch": [
            {"ErrorEquals": ["States.ALL"], "ResultPath": "$.outcomeError", "Next": "Compensated"}
        ],
        "Next": "Compensated",
    }
    assert states["Compensated"]["Choices"] == [
        {"Variable": "$.compensationErrors", "IsPresent": True, "Next": "CompensationFailed"},
        {"Variable": "$.outcomeError", "IsPresent": True, "Next": "OutcomeNotRecorded"},
    ]
    assert states["OutcomeNotRecorded"]["Error"] == "SagaOutcomeNotRecorded"
    # Success does not pass through the failure hook.
    assert states["ship"]["Next"] == "SagaSucceeded"


def test_without_compensations_a_failure_goes_straight_to_the_failure_hook() -> None:
    d = saga_definition([SagaStep(name="a", task=fn("a"))], on_failure=fn("recordOutcome"))
    validate_definition(d)
    assert d["States"]["a"]["Catch"] == [
        {"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": "RecordFailure"}
    ]
    assert d["States"]["RecordFailure"]["Next"] == "Compensated"
    assert d["States"]["Compensated"]["Choices"] == [
        {"Variable": "$.outcomeError", "IsPresent": True, "Next": "OutcomeNotRecorded"}
    ]
    assert "CompensationFailed" not in d["States"]


def test_the_success_hook_runs_after_the_last_step() -> None:
    d = order_saga(own=True, on_success=fn("recordOutcome"))
    validate_definition(d)
    states = d["States"]
    assert states["ship"]["Next"] == "RecordSuccess"
    assert states["RecordSuccess"]["Next"] == "SagaSucceeded"
    assert states["RecordSuccess"]["Catch"] == [
        {
            "ErrorEquals": ["States.ALL"],
            "ResultPath": "$.outcomeError",
            "Next": "OutcomeNotRecorded",
        }
    ]
    assert "RecordFailure" not in states


def test_hooks_are_listed_for_the_state_machines_role_and_checked() -> None:
    steps = [SagaStep(name="a", task=fn("a"), compensation=fn("undoA"))]
    assert function_arns(steps, on_failure=fn("failed"), on_success=fn("done")) == [
        fn("a"),
        fn("undoA"),
        fn("failed"),
        fn("done"),
    ]
    with pytest.raises(ValueError, match=r"saga_definition: on_failure must be a Lambda"):
        saga_definition(steps, on_failure="record")
    with pytest.raises(ValueError, match=r"state name 'RecordFailure' is reserved"):
        saga_definition([SagaStep(name="RecordFailure", task=fn("a"))])


def test_the_step_retrier_and_the_handler_library_agree_on_the_aws_sdks_transient_errors() -> None:
    """A task's error name is the class name boto3 gives the error code, so each name
    the saga retries is a code the handler library (`eventcraft.durable_saga`, the
    durable style) also retries."""
    from eventcraft.durable_saga import AWS_TRANSIENT_ERROR_CODES

    assert set(AWS_SDK_TRANSIENT_ERRORS) <= AWS_TRANSIENT_ERROR_CODES
