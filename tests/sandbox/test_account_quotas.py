"""The account's Lambda concurrency quota (`eventcraft_sandbox.quotas`): a reservation
that would leave fewer than 100 unreserved executions is refused with Lambda's error,
through a real boto3 client on a running `Sandbox`, whoever asks."""

from __future__ import annotations

import io
import zipfile
from collections.abc import Iterator

import pytest
from botocore.exceptions import ClientError

from eventcraft_sandbox.moto_deploy import Sandbox

TRUST_LAMBDA = (
    '{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", '
    '"Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}]}'
)


def refusal(minimum: int) -> tuple[str, str]:
    return (
        "InvalidParameterValueException",
        "Specified ReservedConcurrentExecutions for function decreases account's "
        f"UnreservedConcurrentExecution below its minimum value of [{minimum}].",
    )


def functions(sandbox: Sandbox, *names: str) -> None:
    role = sandbox.client("iam").create_role(
        RoleName="fn-role", AssumeRolePolicyDocument=TRUST_LAMBDA
    )["Role"]["Arn"]
    code = io.BytesIO()
    with zipfile.ZipFile(code, "w") as archive:
        archive.writestr("app.py", "def handler(event, context):\n    return event\n")
    for name in names:
        sandbox.client("lambda").create_function(
            FunctionName=name,
            Runtime="python3.12",
            Role=role,
            Handler="app.handler",
            Code={"ZipFile": code.getvalue()},
        )


def reserve(sandbox: Sandbox, name: str, units: int) -> None:
    sandbox.client("lambda").put_function_concurrency(
        FunctionName=name, ReservedConcurrentExecutions=units
    )


def error(exc: pytest.ExceptionInfo[ClientError]) -> tuple[str, str]:
    return exc.value.response["Error"]["Code"], exc.value.response["Error"]["Message"]


@pytest.fixture
def sandbox() -> Iterator[Sandbox]:
    with Sandbox(concurrency_quota=300) as running:
        functions(running, "a", "b")
        yield running


def test_reservations_may_leave_exactly_100_unreserved_and_not_one_less(
    sandbox: Sandbox,
) -> None:
    reserve(sandbox, "a", 150)
    reserve(sandbox, "b", 50)  # 300 - 200 = 100 left: allowed
    with pytest.raises(ClientError) as refused:
        reserve(sandbox, "b", 51)
    assert error(refused) == refusal(100)
    # A function's own reservation is replaced, not added to: "a" may go up to 200.
    reserve(sandbox, "a", 150)
    lambda_ = sandbox.client("lambda")
    assert lambda_.get_function_concurrency(FunctionName="b")["ReservedConcurrentExecutions"] == 50
    lambda_.delete_function_concurrency(FunctionName="b")
    reserve(sandbox, "a", 200)
    assert lambda_.get_function_concurrency(FunctionName="a")["ReservedConcurrentExecutions"] == 200


def test_an_account_under_100_can_reserve_nothing_and_says_its_own_minimum() -> None:
    """New accounts start with a quota of 10 or 50: AWS answers "[10]", "[50]"."""
    with Sandbox(concurrency_quota=50) as small:
        functions(small, "a")
        with pytest.raises(ClientError) as refused:
            reserve(small, "a", 1)
        assert error(refused) == refusal(50)
        reserve(small, "a", 0)  # reserving nothing (throttling every call) is allowed


@pytest.mark.parametrize("quota", [0, -5, 2.5, "1000", True])
def test_a_quota_that_is_not_a_whole_number_above_0_is_refused_naming_it(quota: object) -> None:
    with pytest.raises(ValueError) as refused:
        Sandbox(concurrency_quota=quota)  # type: ignore[arg-type]
    assert str(refused.value) == (
        f"concurrency_quota: {quota!r} is not a whole number >= 1 (the account's Lambda "
        "concurrent executions quota; AWS's usual one is 1000)"
    )
