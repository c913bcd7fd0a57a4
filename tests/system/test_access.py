"""Each function's role allows exactly the calls its handler makes (its module's ACCESS)
on exactly the resources it touches, and ACCESS is read without importing handlers."""

from __future__ import annotations

import importlib
import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from eventcraft_sandbox.mock_deploy import RecordingMocks
from eventcraft_sandbox.mock_deploy import deploy as mock_deploy
from order_saga.catalogue import CODE_DIR, DLQ_PROCESSOR_HANDLER, function_specs
from order_saga.config import OrderSagaConfig
from order_saga.system import OrderSaga, OrderSagaArgs
from order_saga.wiring import (
    OWN_FUNCTION,
    AccessError,
    Binding,
    UnmappedResourceError,
    handler_module,
    read_access,
    restrict,
    wire,
)
from tests.system.conftest import FUNCTION, MODES, STACKS, System, deploy

HANDLER_MODULES = sorted(
    f"handlers.{p.stem}" for p in (CODE_DIR / "handlers").glob("*.py") if p.stem != "__init__"
)
BASE_ACTIONS = {"logs:CreateLogStream", "logs:PutLogEvents"}
XRAY_ACTIONS = {"xray:PutTraceSegments", "xray:PutTelemetryRecords"}


@pytest.mark.parametrize("module", HANDLER_MODULES)
def test_ast_reads_the_same_access_the_module_defines(module: str) -> None:
    imported = importlib.import_module(module)
    assert read_access(module) == dict(imported.ACCESS)


def test_each_check_function_gets_only_its_checks_access() -> None:
    run_check = importlib.import_module("handlers.run_check")
    specs = {s.handler: s for s in function_specs("both")}
    for entry, check in run_check.ENTRIES.items():
        handler = f"handlers.run_check.{entry}"
        if handler not in specs:
            continue  # the *_task entries: the fork/join runs by events
        spec = specs[handler]
        assert spec.access is not None
        assert (
            restrict(run_check.ACCESS, spec.access, handler=handler)
            == run_check.CHECK_ACCESS[check]
        )


# ------------------------------------------------------------- rendered policies


def _statements(document: dict[str, Any]) -> list[dict[str, Any]]:
    statements = document["Statement"]
    return statements if isinstance(statements, list) else [statements]


def _pairs(document: dict[str, Any]) -> set[tuple[str, str]]:
    pairs = set()
    for st in _statements(document):
        assert st["Effect"] == "Allow"
        actions = [st["Action"]] if isinstance(st["Action"], str) else st["Action"]
        resources = [st["Resource"]] if isinstance(st["Resource"], str) else st["Resource"]
        pairs |= {(a, r) for a in actions for r in resources}
    return pairs


def _expected(
    system: System, function: Any, access: dict[str, frozenset[str]]
) -> set[tuple[str, str]]:
    """ACCESS with each variable resolved to the ARN of the resource its value names
    (OWN_FUNCTION: the function itself)."""
    env = function.inputs["environment"]["variables"]
    pairs = set()
    for variable, actions in access.items():
        if variable == OWN_FUNCTION:
            assert variable not in env  # the Lambda runtime sets it
            pairs |= {(action, function.arn) for action in actions}
            continue
        resource = system.resource_named(env[variable])
        arn = resource.arn
        assert arn is not None
        if resource.typ == "aws:s3/bucket:Bucket":
            arn = f"{arn}/*"  # object actions are authorized on the objects
        pairs |= {(action, arn) for action in actions}
    return pairs


# Granted by the OutboxRelay component (not wired): grant names, by handler.
OUTBOX_GRANTS = {
    "handlers.outbox_relay.handler": ("put-events", "mark-published"),
    "handlers.outbox_sweeper.handler": ("put-events", "sweep"),
}


def _access_of(function: Any) -> dict[str, frozenset[str]]:
    handler = str(function.inputs["handler"])
    if handler in OUTBOX_GRANTS:
        return read_access(handler_module(handler))
    specs = {f"saga-{s.name}-function": s for s in function_specs("both")}
    spec = specs.get(function.name)
    if spec is None:
        assert handler == DLQ_PROCESSOR_HANDLER, function.name
        return read_access(handler_module(handler))
    access = read_access(handler_module(handler))
    return restrict(access, spec.access, handler=handler) if spec.access else access


@pytest.mark.parametrize("stack", STACKS)
@pytest.mark.parametrize("mode", MODES)
def test_every_role_allows_exactly_what_its_handler_declares(stack: str, mode: str) -> None:
    system = deploy(stack, mode)
    mappings = {
        m.name.removesuffix("-mapping"): m
        for m in system.of_type("aws:lambda/eventSourceMapping:EventSourceMapping")
    }
    for function in system.of_type(FUNCTION):
        component = function.name.removesuffix("-function")
        policies = system.role_policies(function)
        access = _access_of(function)
        # The handler's grants: exactly ACCESS, resolved to ARNs.
        handler = str(function.inputs["handler"])
        if handler in OUTBOX_GRANTS:
            granted_names = {f"{component}-{grant}" for grant in OUTBOX_GRANTS[handler]}
        else:
            granted_names = {n for n in policies if n.startswith(f"{component}-access-")}
            assert len(granted_names) == len(access), function.name
        granted = set().union(*(_pairs(policies[n]) for n in granted_names))
        expected = _expected(system, function, access)
        if handler == "handlers.outbox_sweeper.handler":
            # It reads the unpublished rows through the outbox's pending index only.
            expected = {
                (a, f"{r}/index/pending" if a == "dynamodb:Query" else r) for a, r in expected
            }
        assert granted == expected, function.name
        # Every other policy is the function's own logging / tracing, its async
        # on-failure queue, or an event source mapping's read of its source.
        for name, document in policies.items():
            if name in granted_names:
                continue
            pairs = _pairs(document)
            actions = {a for a, _ in pairs}
            if name == f"{component}-role-policy":
                assert actions == BASE_ACTIONS | XRAY_ACTIONS, name
                (log_group,) = {r for a, r in pairs if a in BASE_ACTIONS}
                assert log_group.endswith(f":log-group:/aws/lambda/{function.outputs['name']}:*")
            elif name == f"{component}-async-on-failure":
                assert actions == {"sqs:SendMessage"}, name
            elif name.startswith(f"{component}-dead-letter-"):
                # An SQS consumer sends what will not succeed to its queue's DLQ, with
                # the error (eventcraft.batch dead_letter), and only there.
                queue = system.outputs["queues"][name.removeprefix(f"{component}-dead-letter-")]
                assert pairs == {("sqs:SendMessage", queue["dlqArn"])}, name
                assert function.arn in {
                    m.inputs["functionName"]
                    for m in mappings.values()
                    if m.inputs["eventSourceArn"] == queue["arn"]
                }, name
            else:
                mapping = mappings[name.removesuffix("-read")]
                assert mapping.inputs["functionName"] == function.arn, name
                source = mapping.inputs["eventSourceArn"]
                assert {r for _, r in pairs} - {source} <= {
                    r for a, r in pairs if a == "sqs:SendMessage"
                }, name
                assert "dynamodb:PutItem" not in actions, name


@pytest.mark.parametrize("stack", STACKS)
def test_only_the_import_may_invoke_itself_and_it_allows_recursive_loops(stack: str) -> None:
    """The bulk import continues a long file in new invocations of itself: it may invoke
    its own function and nothing else, and Lambda's loop detection (16 hops) must not
    end the chain."""
    system = deploy(stack, "both")
    invokers = {
        policy.name: _pairs(json.loads(policy.inputs["policy"]))
        for policy in system.of_type("aws:iam/rolePolicy:RolePolicy")
        if "lambda:InvokeFunction" in policy.inputs["policy"]
        and not policy.name.startswith("saga-orchestrator")
    }
    importer = system.function("import-orders")
    assert invokers == {
        "saga-import-orders-access-aws-lambda-function-name": {
            ("lambda:InvokeFunction", importer.arn)
        }
    }
    (recursion,) = system.of_type("aws:lambda/functionRecursionConfig:FunctionRecursionConfig")
    assert recursion.inputs == {
        "functionName": importer.outputs["name"],
        "recursiveLoop": "Allow",
    }


def test_the_state_machine_may_invoke_exactly_its_task_functions() -> None:
    system = deploy("prod", "orchestration")
    (policy,) = [
        p
        for p in system.of_type("aws:iam/rolePolicy:RolePolicy")
        if p.name == "saga-orchestrator-role-policy"
    ]

    (invoke,) = [
        s
        for s in json.loads(policy.inputs["policy"])["Statement"]
        if s["Sid"] == "InvokeTaskFunctions"
    ]
    tasks = {
        system.function(name).arn
        for name in (
            "reserve-inventory-task",
            "process-payment-task",
            "ship-order-task",
            "release-inventory-task",
            "refund-payment-task",
            "record-outcome",
        )
    }
    assert set(invoke["Resource"]) == tasks | {f"{arn}:*" for arn in tasks}


# ------------------------------------------------------------- reading ACCESS


def _module(tmp_path: Path, source: str) -> Path:
    (tmp_path / "handlers").mkdir(exist_ok=True)
    (tmp_path / "handlers" / "thing.py").write_text(source)
    return tmp_path


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("X = 1\n", r"handlers.thing: no top-level ACCESS"),
        ("ACCESS = dict(A=frozenset())\n", r"handlers.thing.ACCESS is not a literal dict"),
        (
            "KEYS = ('A',)\nACCESS = {k: frozenset({'a:B'}) for k in KEYS}\n",
            r"ACCESS is not a literal dict: the system reads it without running code",
        ),
        ("ACCESS = {NAME: frozenset({'a:B'})}\n", r"every key must be a literal string"),
        ("ACCESS = {'A': {'a:B'}}\n", r"ACCESS\['A'\] must be frozenset"),
        ("ACCESS = {'A': frozenset(ACTIONS)}\n", r"ACCESS\['A'\] must be frozenset"),
        ("ACCESS = {'A': frozenset({ACTION})}\n", r"every action must be a literal string"),
        ("ACCESS = {\n", r"handlers.thing: does not parse"),
    ],
)
def test_access_that_is_not_a_literal_is_refused(tmp_path: Path, source: str, message: str) -> None:
    with pytest.raises(AccessError, match=message):
        read_access("handlers.thing", code_dir=_module(tmp_path, source))


def test_annotated_and_list_forms_are_literals_too(tmp_path: Path) -> None:
    code = _module(
        tmp_path,
        "from typing import Final\nACCESS: Final[dict[str, frozenset[str]]] = "
        "{'A': frozenset(['a:B', 'a:C']), 'B': frozenset()}\n",
    )
    assert read_access("handlers.thing", code_dir=code) == {
        "A": frozenset({"a:B", "a:C"}),
        "B": frozenset(),
    }


TABLE = Binding("table", "orders", "arn:aws:dynamodb:us-east-1:123456789012:table/orders", "orders")


def test_wire_sets_the_variable_and_grants_exactly_the_actions() -> None:
    wiring = wire(
        "handlers.x.handler",
        {"ORDERS_TABLE": frozenset({"dynamodb:PutItem", "dynamodb:GetItem"})},
        {"ORDERS_TABLE": TABLE, "OTHER_TABLE": TABLE},
    )
    assert wiring.environment == {"ORDERS_TABLE": "orders"}
    (statement,) = wiring.grants["access-orders-table"]
    assert list(statement.actions) == ["dynamodb:GetItem", "dynamodb:PutItem"]
    assert list(statement.resources) == [TABLE.arn]


def test_the_own_function_is_granted_on_its_arn_once_it_exists() -> None:
    """AWS_LAMBDA_FUNCTION_NAME, set by the Lambda runtime, names the function itself:
    no variable is set, no binding needed, and the grant waits for the function's ARN."""
    wiring = wire(
        "handlers.x.handler",
        {OWN_FUNCTION: frozenset({"lambda:InvokeFunction"})},
        {"ORDERS_TABLE": TABLE},
    )
    assert (wiring.environment, wiring.grants) == ({}, {})
    (statement,) = wiring.own_grants("arn:aws:lambda:us-east-1:123456789012:function:x")[
        "access-aws-lambda-function-name"
    ]
    assert list(statement.actions) == ["lambda:InvokeFunction"]
    assert list(statement.resources) == ["arn:aws:lambda:us-east-1:123456789012:function:x"]
    assert wire("handlers.x.handler", {}, {}).own_grants("arn:x") == {}
    with pytest.raises(
        AccessError,
        match=r"lists sqs:SendMessage, but AWS_LAMBDA_FUNCTION_NAME names its own function "
        r"\(only lambda:\* actions",
    ):
        wire("handlers.x.handler", {OWN_FUNCTION: frozenset({"sqs:SendMessage"})}, {})


def test_a_query_on_a_table_with_indexes_includes_its_indexes() -> None:
    indexed = Binding("table", "t", "arn:t", "t", index_arn="arn:t/index/*")
    (query,) = indexed.statements(frozenset({"dynamodb:Query"}))
    assert list(query.resources) == ["arn:t", "arn:t/index/*"]
    (get,) = indexed.statements(frozenset({"dynamodb:GetItem"}))
    assert list(get.resources) == ["arn:t"]


def test_an_unmapped_variable_names_the_handler_and_the_variable() -> None:
    with pytest.raises(UnmappedResourceError) as raised:
        wire(
            "handlers.x.handler",
            {
                "ORDERS_TABLE": frozenset({"dynamodb:GetItem"}),
                "FAX_QUEUE_URL": frozenset({"sqs:SendMessage"}),
            },
            {"ORDERS_TABLE": TABLE},
        )
    assert str(raised.value).startswith(
        "handlers.x.handler: its ACCESS names FAX_QUEUE_URL, which the system provides no resource"
    )


def test_an_action_of_another_service_is_refused() -> None:
    with pytest.raises(
        AccessError, match=r"lists sqs:SendMessage, but ORDERS_TABLE names 'orders', a table"
    ):
        wire(
            "handlers.x.handler",
            {"ORDERS_TABLE": frozenset({"sqs:SendMessage"})},
            {"ORDERS_TABLE": TABLE},
        )
    with pytest.raises(AccessError, match=r"ACCESS\['ORDERS_TABLE'\] grants no action"):
        wire("handlers.x.handler", {"ORDERS_TABLE": frozenset()}, {"ORDERS_TABLE": TABLE})


def test_the_system_stops_before_declaring_anything_for_an_unbound_variable(tmp_path: Path) -> None:
    code = tmp_path / "functions"
    shutil.copytree(CODE_DIR, code, ignore=shutil.ignore_patterns("__pycache__"))
    status = code / "handlers" / "order_status.py"
    status.write_text(
        status.read_text().replace(
            '"ORDERS_TABLE": frozenset({"dynamodb:GetItem"}),',
            '"ORDERS_TABLE": frozenset({"dynamodb:GetItem"}),\n'
            '    "AUDIT_TABLE": frozenset({"dynamodb:PutItem"}),',
        )
    )
    mocks = RecordingMocks()

    def program() -> None:
        OrderSaga("saga", OrderSagaArgs(config=OrderSagaConfig(), code_dir=code))

    with pytest.raises(
        UnmappedResourceError, match=r"handlers.order_status.handler: its ACCESS names AUDIT_TABLE"
    ):
        mock_deploy(program, mocks=mocks)
    assert mocks.registrations == []
