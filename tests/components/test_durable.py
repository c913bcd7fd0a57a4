"""Durable functions: the function, its role, its alias, and every caller using the alias.

What `pulumi preview` shows for a `Function` with `durable=DurableConfig(...)`, what
rule targets, permissions, event source mappings and invoke grants name, the refusals,
and the Region table. Non-durable functions must come out exactly as before.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pulumi
import pytest

from eventcraft_sandbox.mock_deploy import Deployment, RecordingMocks, Resource, deploy
from pulumi_eventcraft.durable import (
    DURABLE_FUNCTION_REGIONS,
    DurableConfig,
    check_durable_region,
)
from pulumi_eventcraft.event_bus import EventBus
from pulumi_eventcraft.event_pattern import Pattern
from pulumi_eventcraft.event_rule import EventRule, EventRuleArgs, LambdaTarget
from pulumi_eventcraft.event_source import EventSourceMapping, EventSourceMappingArgs, SqsSource
from pulumi_eventcraft.function import Function, FunctionArgs
from pulumi_eventcraft.queue import Queue, QueueArgs

FN = "aws:lambda/function:Function"
ALIAS = "aws:lambda/alias:Alias"
ROLE_POLICY = "aws:iam/rolePolicy:RolePolicy"
PERMISSION = "aws:lambda/permission:Permission"
EVENT_TARGET = "aws:cloudwatch/eventTarget:EventTarget"
INVOKE_CONFIG = "aws:lambda/functionEventInvokeConfig:FunctionEventInvokeConfig"
MAPPING = "aws:lambda/eventSourceMapping:EventSourceMapping"
ACCOUNT = "123456789012"
FN_NAME = "project-dev-saga"
FN_ARN = f"arn:aws:lambda:us-east-1:{ACCOUNT}:function:{FN_NAME}"
ALIAS_ARN = f"{FN_ARN}:live"
DURABLE_ACTIONS = ["lambda:CheckpointDurableExecution", "lambda:GetDurableExecutionState"]


class AliasMocks(RecordingMocks):
    """The recorder, with the ARN AWS gives an alias: the function ARN, `:`, its name."""

    def create(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str, dict[str, Any]]:
        resource_id, outputs = super().create(args)
        if args.typ == ALIAS:
            function = args.inputs["functionName"]
            outputs["arn"] = (
                f"arn:aws:lambda:{self.region}:{self.account}:function:{function}:"
                f"{args.inputs['name']}"
            )
        return resource_id, outputs


@pytest.fixture
def code_dir(tmp_path: Path) -> Path:
    root = tmp_path / "functions"
    (root / "handlers").mkdir(parents=True)
    (root / "handlers" / "saga.py").write_text("def handler(event, context):\n    return event\n")
    return root


def durable_args(code: Path, **overrides: Any) -> FunctionArgs:
    base: dict[str, Any] = {
        "handler": "handlers.saga.handler",
        "timeout_seconds": 60,
        "code_dir": code,
        "runtime": "python3.13",
        "durable": DurableConfig(execution_timeout_seconds=86_400, retention_period_days=7),
    }
    return FunctionArgs(**{**base, **overrides})


def run(program: Any) -> Deployment:
    return deploy(program, mocks=AliasMocks())


def doc(resource: Resource) -> dict[str, Any]:
    return json.loads(resource.inputs["policy"])


def target_everything(fn_args: FunctionArgs) -> Deployment:
    """The function, a rule targeting it, a queue it consumes, and a caller's grant."""

    def program() -> None:
        saga = Function("saga", fn_args)
        bus = EventBus("orders")
        rule = EventRule(
            "placed", EventRuleArgs(bus=bus, pattern=Pattern(source="shop", detail_type="Placed"))
        )
        rule.add_target(LambdaTarget.of(saga))
        queue = Queue("work", QueueArgs(visibility_timeout_seconds=360))
        EventSourceMapping(
            "saga-work", EventSourceMappingArgs(function=saga, source=SqsSource(queue=queue))
        )
        caller_args = FunctionArgs(
            handler="handlers.saga.handler", timeout_seconds=10, code_dir=fn_args.code_dir
        )
        caller = Function("caller", caller_args)
        caller.grant_invoke(saga)

    return run(program)


# ------------------------------------------------------------------ the function


def test_durable_config_reaches_the_function_which_is_published(code_dir: Path) -> None:
    fn = run(lambda: Function("saga", durable_args(code_dir))).named("saga-function", FN)
    assert fn.inputs["durableConfig"] == {"executionTimeout": 86_400, "retentionPeriod": 7}
    assert fn.inputs["publish"] is True
    assert fn.inputs["runtime"] == "python3.13"


def test_retention_defaults_to_fourteen_days(code_dir: Path) -> None:
    fn_args = durable_args(code_dir, durable=DurableConfig(execution_timeout_seconds=3600))
    fn = run(lambda: Function("saga", fn_args)).named("saga-function", FN)
    assert fn.inputs["durableConfig"] == {"executionTimeout": 3600, "retentionPeriod": 14}


def test_role_may_checkpoint_its_own_executions_only(code_dir: Path) -> None:
    d = run(lambda: Function("saga", durable_args(code_dir)))
    policy = d.named("saga-durable-execution", ROLE_POLICY)
    assert doc(policy)["Statement"] == [
        {"Effect": "Allow", "Action": DURABLE_ACTIONS, "Resource": f"{FN_ARN}:*"}
    ]
    assert policy.inputs["role"] == d.named("saga-role", "aws:iam/role:Role").outputs["name"]
    # No other policy of the function mentions durable executions.
    others = [p for p in d.of_type(ROLE_POLICY) if p.name != "saga-durable-execution"]
    assert not any("Durable" in p.inputs["policy"] for p in others)


def test_alias_follows_the_published_version(code_dir: Path) -> None:
    made: list[Function] = []
    d = run(lambda: made.append(Function("saga", durable_args(code_dir))))
    fn = d.named("saga-function", FN)
    alias = d.named("saga-alias", ALIAS)
    assert alias.parent == d.named("saga", "eventcraft:index:Function").urn
    assert alias.inputs["name"] == "live"
    assert alias.inputs["functionName"] == FN_NAME
    assert alias.inputs["functionVersion"] == fn.outputs["version"]
    assert made[0].qualifier == "live"


def test_rule_target_permission_mapping_and_grant_use_the_alias(code_dir: Path) -> None:
    d = target_everything(durable_args(code_dir))
    assert d.named("placed-lambda", EVENT_TARGET).inputs["arn"] == ALIAS_ARN
    permission = d.named("placed-lambda-permission", PERMISSION).inputs
    assert permission["function"] == FN_NAME
    assert permission["qualifier"] == "live"
    assert d.named("saga-work-mapping", MAPPING).inputs["functionName"] == ALIAS_ARN
    grant = d.named("caller-invoke-saga", ROLE_POLICY)
    assert doc(grant)["Statement"] == [
        {"Effect": "Allow", "Action": "lambda:InvokeFunction", "Resource": ALIAS_ARN}
    ]


def test_async_settings_apply_to_the_alias(code_dir: Path) -> None:
    d = run(lambda: Function("saga", durable_args(code_dir, async_on_failure=True)))
    assert d.named("saga-async", INVOKE_CONFIG).inputs["qualifier"] == "live"


# --------------------------------------------------------- non-durable: unchanged


def test_plain_function_has_no_alias_and_callers_use_its_arn(code_dir: Path) -> None:
    plain = durable_args(code_dir, durable=None, runtime="python3.12", async_on_failure=True)
    d = target_everything(plain)
    fn = d.named("saga-function", FN)
    assert "durableConfig" not in fn.inputs
    assert "publish" not in fn.inputs
    assert not d.of_type(ALIAS)
    assert all("durable" not in r.name for r in d)
    assert d.named("placed-lambda", EVENT_TARGET).inputs["arn"] == FN_ARN
    assert "qualifier" not in d.named("placed-lambda-permission", PERMISSION).inputs
    assert d.named("saga-work-mapping", MAPPING).inputs["functionName"] == FN_ARN
    assert "qualifier" not in d.named("saga-async", INVOKE_CONFIG).inputs
    grant = d.named("caller-invoke-saga", ROLE_POLICY)
    assert doc(grant)["Statement"][0]["Resource"] == FN_ARN


# -------------------------------------------------------------------- refusals


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        (
            {"execution_timeout_seconds": 0},
            "durable.execution_timeout_seconds: 0 is outside 1..31622400 seconds (366 days)",
        ),
        (
            {"execution_timeout_seconds": 31_622_401},
            "durable.execution_timeout_seconds: 31622401 is outside 1..31622400 seconds",
        ),
        (
            {"execution_timeout_seconds": 1.5},
            "durable.execution_timeout_seconds: 1.5 must be a whole number of seconds",
        ),
        (
            {"execution_timeout_seconds": 60, "retention_period_days": 0},
            "durable.retention_period_days: 0 is outside 1..90 days",
        ),
        (
            {"execution_timeout_seconds": 60, "retention_period_days": 91},
            "durable.retention_period_days: 91 is outside 1..90 days",
        ),
        (
            {"execution_timeout_seconds": True},
            "durable.execution_timeout_seconds: True must be a whole number of seconds",
        ),
    ],
)
def test_durable_config_refuses_values_outside_aws_limits(
    settings: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValueError) as raised:
        DurableConfig(**settings)
    assert str(raised.value).startswith(message)


def test_limits_themselves_are_accepted() -> None:
    DurableConfig(execution_timeout_seconds=1, retention_period_days=1)
    DurableConfig(execution_timeout_seconds=31_622_400, retention_period_days=90)


def test_durable_function_needs_python_3_13(code_dir: Path) -> None:
    with pytest.raises(ValueError) as raised:
        durable_args(code_dir, runtime="python3.12")
    assert str(raised.value) == (
        "runtime: 'python3.12' cannot run a durable function; use python3.13 or newer "
        "(or durable=None)"
    )


def test_durable_must_be_a_durable_config(code_dir: Path) -> None:
    with pytest.raises(ValueError, match=r"durable: expected a DurableConfig or None, got dict"):
        durable_args(code_dir, durable={"execution_timeout_seconds": 60})


# ---------------------------------------------------------------------- regions


def test_region_offering_durable_functions_passes() -> None:
    assert "us-east-2" in DURABLE_FUNCTION_REGIONS
    check_durable_region("us-east-2")


def test_region_without_durable_functions_is_named_with_the_ones_that_have_them() -> None:
    with pytest.raises(ValueError) as raised:
        check_durable_region("eu-west-1", field="aws:region")
    assert str(raised.value) == (
        "aws:region: Lambda durable functions are not offered in 'eu-west-1'; they are "
        "offered in us-east-2 (pulumi_eventcraft.durable.DURABLE_FUNCTION_REGIONS)"
    )
