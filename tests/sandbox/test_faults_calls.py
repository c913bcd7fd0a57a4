"""`eventcraft_sandbox.fault_injection`: the faults of a `FaultPlan` applied to AWS calls
and Lambda invocations, each shown as AWS shows it.

First, on a bare moto (`clients=True`, no handlers): each service's throttling and
outage error exactly as a boto3 client parses it, and the hook composing with others.
Then ONE session (module scope) of a small program: `actor` (runs the AWS calls its
event lists and returns what each gave), `helper` (the same code, invoked by the
actor, by Step Functions), `consumer` (an SQS queue's, counting deliveries per body)
and `guarded` (Powertools idempotency). Each test swaps the session's fault plan
(`inject`), so the one deploy serves them all; P = 1.0 or 0.0 wherever an exact
assertion is needed, and a seed found by `FaultPlan.draw` itself where a draw must
first hit and then miss.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import boto3
import pulumi
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError
from moto import mock_aws
from moto.core.botocore_stubber import BotocoreStubber

from eventcraft_sandbox.fault_injection import FaultInjector
from eventcraft_sandbox.faults import FaultPlan
from eventcraft_sandbox.session import SandboxSession
from pulumi_eventcraft.event_bus import EventBus, EventBusArgs
from pulumi_eventcraft.event_source import EventSourceMapping, EventSourceMappingArgs, SqsSource
from pulumi_eventcraft.function import Function, FunctionArgs
from pulumi_eventcraft.queue import Queue, QueueArgs
from pulumi_eventcraft.state_machine import StateMachine, StateMachineArgs
from pulumi_eventcraft.table import KeyAttribute, Table, TableArgs
from tests.sandbox.host_layers import host_release_layer

REGION = "us-east-1"
NO_RETRIES: Any = {"mode": "standard", "total_max_attempts": 1}


# ------------------------------------------------------------------ bare moto


def _bare_call(service: str) -> Any:
    """One call to `service` (its resources need not exist: a fault answers first)."""
    config = Config(region_name=REGION, retries=NO_RETRIES)
    client: Any = boto3.client(service, config=config)  # type: ignore[call-overload]
    calls = {
        "dynamodb": lambda: client.put_item(TableName="t", Item={"pk": {"S": "k"}}),
        "events": lambda: client.put_events(
            Entries=[{"Source": "s", "DetailType": "d", "Detail": "{}"}]
        ),
        "sqs": lambda: client.send_message(
            QueueUrl=f"https://sqs.{REGION}.amazonaws.com/123456789012/q", MessageBody="b"
        ),
        "lambda": lambda: client.invoke(FunctionName="f", Payload=b"{}"),
        "stepfunctions": lambda: client.start_execution(
            stateMachineArn=f"arn:aws:states:{REGION}:123456789012:stateMachine:m"
        ),
        "kinesis": lambda: client.put_record(StreamName="s", Data=b"x", PartitionKey="p"),
    }
    return calls[service]


def _refused(service: str) -> dict[str, Any]:
    with pytest.raises(ClientError) as caught:
        _bare_call(service)()
    return dict(caught.value.response)


@pytest.fixture
def bare() -> Iterator[None]:
    with mock_aws():
        yield


def _injector(*faults: str, seed: int = 0) -> FaultInjector:
    return FaultInjector(FaultPlan.parse(faults, seed=seed), clients=True)


@pytest.mark.parametrize(
    ("service", "target", "status", "code", "message"),
    [
        ("dynamodb", "dynamodb", 400, "ProvisionedThroughputExceededException", "Throughput"),
        ("events", "events", 400, "ThrottlingException", "Rate exceeded"),
        ("sqs", "sqs", 400, "RequestThrottled", "Request is throttled."),
        ("lambda", "lambda", 429, "TooManyRequestsException", "Rate Exceeded."),
        ("stepfunctions", "states", 400, "ThrottlingException", "Rate exceeded"),
        ("kinesis", "kinesis", 400, "ProvisionedThroughputExceededException", "Rate exceeded"),
    ],
)
def test_a_throttled_call_gets_the_services_own_throttling_error(
    bare: None, service: str, target: str, status: int, code: str, message: str
) -> None:
    with _injector(f"throttle@{target}=1").installed() as injector:
        response = _refused(service)
    assert response["Error"]["Code"] == code
    assert response["Error"]["Message"].startswith(message)
    assert response["ResponseMetadata"]["HTTPStatusCode"] == status
    assert injector.plan.snapshot() == {"throttle": 1}
    if service == "lambda":  # modelled members come back parsed, as from AWS
        assert response["Reason"] == "ConcurrentInvocationLimitExceeded"
        assert response["Type"] == "User"
    if service == "dynamodb":
        assert response["ThrottlingReasons"] == [
            {
                "reason": "TableWriteKeyRangeThroughputExceeded",
                "resource": "arn:aws:dynamodb:us-east-1:123456789012:table/t",
            }
        ]


@pytest.mark.parametrize(
    ("service", "target", "status", "code"),
    [
        ("dynamodb", "dynamodb", 500, "InternalServerError"),
        ("events", "events", 500, "InternalException"),
        ("sqs", "sqs", 503, "ServiceUnavailable"),
        ("lambda", "lambda", 500, "ServiceException"),
        ("stepfunctions", "states", 503, "ServiceUnavailable"),
        ("kinesis", "kinesis", 503, "ServiceUnavailable"),
    ],
)
def test_a_call_in_an_outage_gets_the_services_server_error(
    bare: None, service: str, target: str, status: int, code: str
) -> None:
    with _injector(f"outage@{target}=0+60").installed() as injector:
        response = _refused(service)
    assert (response["Error"]["Code"], response["ResponseMetadata"]["HTTPStatusCode"]) == (
        code,
        status,
    )
    assert injector.plan.snapshot() == {"outage": 1}


def test_a_throttled_transaction_is_cancelled_with_a_throttling_error_reason(bare: None) -> None:
    client = boto3.client("dynamodb", config=Config(region_name=REGION, retries=NO_RETRIES))
    with (
        _injector("throttle@dynamodb=1").installed(),
        pytest.raises(client.exceptions.TransactionCanceledException) as caught,
    ):
        client.transact_write_items(
            TransactItems=[
                {"Put": {"TableName": "t", "Item": {"pk": {"S": k}}}} for k in ("a", "b")
            ]
        )
    reasons = [r["Code"] for r in caught.value.response["CancellationReasons"]]
    assert sorted(reasons) == ["None", "ThrottlingError"]
    assert caught.value.response["Error"]["Message"] == (
        "Transaction cancelled, please refer cancellation reasons for specific reasons "
        f"[{', '.join(reasons)}]"
    )


def test_botocore_retries_a_throttled_call_and_each_refusal_is_counted(bare: None) -> None:
    """The first attempt refused, the retry let through: the call succeeds, as against
    a throttling AWS, and the count says one refusal."""
    fault = "throttle@sqs=0.5"
    seed = _seed_where(fault, [True, False], service="sqs")
    client = boto3.client(
        "sqs",
        config=Config(region_name=REGION, retries={"mode": "standard", "total_max_attempts": 3}),
    )
    url = client.create_queue(QueueName="work")["QueueUrl"]
    with _injector(fault, seed=seed).installed() as injector:
        response = client.send_message(QueueUrl=url, MessageBody="hello")
    assert response["ResponseMetadata"]["RetryAttempts"] == 1
    assert injector.plan.snapshot() == {"throttle": 1}
    assert [m["Body"] for m in client.receive_message(QueueUrl=url)["Messages"]] == ["hello"]


def test_the_hook_composes_with_hooks_installed_after_it_and_uninstalls_cleanly(
    bare: None,
) -> None:
    """Installed, then another hook over it, then uninstalled first: the other hook
    keeps working and the faults stop; uninstalling in order restores the original."""
    original = BotocoreStubber.__dict__["process_request"]
    injector = _injector("throttle@sqs=1").install()
    seen: list[str] = []
    below = BotocoreStubber.__dict__["process_request"]

    def counting(stub: Any, request: Any) -> Any:
        seen.append(str(request.url))
        return below(stub, request)

    BotocoreStubber.process_request = counting  # type: ignore[method-assign]
    try:
        assert _refused("sqs")["Error"]["Code"] == "RequestThrottled"
        injector.uninstall()
        client = boto3.client("sqs", config=Config(region_name=REGION))
        client.create_queue(QueueName="after")  # no longer throttled
        assert len(seen) == 2
    finally:
        BotocoreStubber.process_request = below  # type: ignore[method-assign]
    assert BotocoreStubber.__dict__["process_request"] is below  # a pass-through now
    injector2 = _injector().install()
    injector2.uninstall()
    assert BotocoreStubber.__dict__["process_request"] is below
    # In LIFO order everything comes back exactly.
    BotocoreStubber.process_request = original  # type: ignore[method-assign]
    injector3 = _injector("throttle=1").install()
    injector3.uninstall()
    assert BotocoreStubber.__dict__["process_request"] is original


def _seed_where(fault: str, draws: Sequence[bool], **scope: str) -> int:
    """A seed whose first draws of `fault` are `draws` (found with the plan's own
    draws, so the tests do not depend on how the generator is seeded)."""
    name = fault.split("=", 1)[0].split("@", 1)[0]
    for seed in range(1000):
        plan = FaultPlan.parse([fault], seed=seed)
        if [plan.draw(name, **scope) for _ in draws] == list(draws):
            return seed
    raise AssertionError(f"no seed below 1000 draws {draws} for {fault}")


# ------------------------------------------------------------------ the program

ACT = """
import json
import os

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError


def handler(event, context):
    config = Config(retries=event.get("retries") or {"mode": "standard", "total_max_attempts": 1})
    clients = {}

    def client(name):
        if name not in clients:
            clients[name] = boto3.client(name, config=config)
        return clients[name]

    results = []
    for kind, argument in event.get("steps", []):
        try:
            results.append(run(client, kind, argument))
        except ClientError as exc:
            response = exc.response
            results.append(
                {
                    "error": response["Error"]["Code"],
                    "message": response["Error"]["Message"],
                    "status": response["ResponseMetadata"]["HTTPStatusCode"],
                    "attempts": response["ResponseMetadata"].get("RetryAttempts", 0) + 1,
                    "reasons": response.get("CancellationReasons"),
                }
            )
        except Exception as exc:
            results.append({"error": type(exc).__name__, "message": str(exc)})
    return results


def run(client, kind, argument):
    table = os.environ["TABLE"]
    if kind == "put":
        client("dynamodb").put_item(TableName=table, Item={"pk": {"S": argument}})
        return "ok"
    if kind == "transact":
        puts = [{"Put": {"TableName": table, "Item": {"pk": {"S": k}}}} for k in argument]
        client("dynamodb").transact_write_items(TransactItems=puts)
        return "ok"
    if kind == "events":
        response = client("events").put_events(
            Entries=[
                {"Source": "tests.faults", "DetailType": t, "Detail": "{}",
                 "EventBusName": os.environ["BUS"]}
                for t in argument
            ]
        )
        return {"FailedEntryCount": response["FailedEntryCount"], "Entries": response["Entries"]}
    if kind == "invoke":
        response = client("lambda").invoke(
            FunctionName=os.environ["HELPER"], Payload=json.dumps(argument).encode()
        )
        return {"FunctionError": response.get("FunctionError"),
                "Payload": json.loads(response["Payload"].read())}
    raise ValueError(kind)
"""

CONSUME = """
import os

import boto3


def handler(event, context):
    for record in event["Records"]:
        boto3.client("dynamodb").update_item(
            TableName=os.environ["TABLE"],
            Key={"pk": {"S": "msg#" + record["body"]}},
            UpdateExpression="ADD deliveries :one",
            ExpressionAttributeValues={":one": {"N": "1"}},
        )
"""

GUARDED = """
import os

import boto3
from aws_lambda_powertools.utilities.idempotency import (
    DynamoDBPersistenceLayer,
    IdempotencyConfig,
    idempotent,
)

PERSISTENCE = DynamoDBPersistenceLayer(table_name=os.environ["IDEMPOTENCY_TABLE"])
CONFIG = IdempotencyConfig(event_key_jmespath="id")


@idempotent(persistence_store=PERSISTENCE, config=CONFIG)
def handler(event, context):
    boto3.client("dynamodb").put_item(
        TableName=os.environ["TABLE"], Item={"pk": {"S": "guarded#" + event["id"]}}
    )
    return {"done": event["id"]}
"""


def _program(code_dir: Path, layer_dir: Path) -> Any:
    def program() -> None:
        powertools = host_release_layer("powertools", layer_dir, "aws-lambda-powertools")
        items = Table("items", TableArgs(hash_key=KeyAttribute("pk")))
        idempotency = Table("idempotency", TableArgs(hash_key=KeyAttribute("id")))
        bus = EventBus("bus", EventBusArgs(archive=False))
        work = Queue(
            "work", QueueArgs(visibility_timeout_seconds=60, max_receive_count=2, alarms=False)
        )

        def function(name: str, module: str, **environment: Any) -> Function:
            made = Function(
                name,
                FunctionArgs(
                    handler=f"handlers.{module}.handler",
                    timeout_seconds=5,
                    code_dir=code_dir,
                    layer=powertools,
                    alarms=False,
                    environment={"TABLE": items.name, **environment},
                ),
            )
            made.grant_read_write(items)
            return made

        helper = function("helper", "act", BUS=bus.name, HELPER="none")
        actor = function("actor", "act", BUS=bus.name, HELPER=helper.name)
        actor.grant_put_events(bus)
        actor.grant_invoke(helper)
        consumer = function("consumer", "consume")
        EventSourceMapping(
            "work-consumer",
            EventSourceMappingArgs(function=consumer, source=SqsSource(queue=work)),
        )
        guarded = function("guarded", "guarded", IDEMPOTENCY_TABLE=idempotency.name)
        guarded.grant_read_write(idempotency)
        flow = StateMachine(
            "flow",
            StateMachineArgs(
                definition={
                    "StartAt": "Help",
                    "States": {
                        "Help": {
                            "Type": "Task",
                            "Resource": "arn:aws:states:::lambda:invoke",
                            "Parameters": {"FunctionName": helper.arn, "Payload.$": "$"},
                            "End": True,
                        }
                    },
                },
                task_function_arns=[helper.arn],
                alarms=False,
            ),
        )
        pulumi.export(
            "functions",
            {
                "actor": actor.name,
                "helper": helper.name,
                "consumer": consumer.name,
                "guarded": guarded.name,
            },
        )
        pulumi.export("tables", {"items": items.name, "idempotency": idempotency.name})
        pulumi.export("queues", {"work": {"url": work.url}})
        pulumi.export("busName", bus.name)
        pulumi.export("stateMachineArn", flow.arn)

    return program


@pytest.fixture(scope="module")
def session(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SandboxSession]:
    code_dir = tmp_path_factory.mktemp("faults-code")
    handlers = code_dir / "handlers"
    handlers.mkdir()
    (handlers / "__init__.py").write_text("")
    (handlers / "act.py").write_text(ACT)
    (handlers / "consume.py").write_text(CONSUME)
    (handlers / "guarded.py").write_text(GUARDED)
    layer_dir = tmp_path_factory.mktemp("faults-layer")
    with SandboxSession(_program(code_dir, layer_dir), "dev", project="callfaults") as running:
        yield running


def inject(session: SandboxSession, *faults: str, seed: int = 0) -> FaultPlan:
    """Swap the session's faults for these (counts from 0, windows from now)."""
    plan = FaultPlan.parse(faults, seed=seed)
    plan.validate_targets(list(session.outputs["functions"]))
    plan.start = session.clock.now()
    assert session.fault_injector is not None
    session.faults = session.fault_injector.plan = plan
    return plan


def act(session: SandboxSession, *steps: Any, retries: Any = None) -> list[Any]:
    result = session.invoke("actor", {"steps": list(steps), "retries": retries})
    assert result.error_type is None, result.error_message
    return list(result.payload)


def keys(session: SandboxSession, prefix: str) -> list[str]:
    return sorted(i["pk"] for i in session.scan("items") if str(i["pk"]).startswith(prefix))


# ------------------------------------------------------------------ calls


def test_a_handlers_throttled_call_fails_with_dynamodbs_error_after_botocores_retries(
    session: SandboxSession,
) -> None:
    inject(session, "throttle@actor=1")
    (result,) = act(
        session, ["put", "throttled-1"], retries={"mode": "standard", "total_max_attempts": 2}
    )
    assert result["error"] == "ProvisionedThroughputExceededException"
    assert result["status"] == 400
    assert result["attempts"] == 2
    assert session.fault_counts == {"throttle": 2}  # each refused attempt
    assert keys(session, "throttled-") == []


def test_a_throttle_on_a_function_covers_the_calls_its_code_makes_only(
    session: SandboxSession,
) -> None:
    """throttle@helper: the actor's own writes go through."""
    inject(session, "throttle@helper=1")
    assert act(session, ["put", "unthrottled-1"]) == ["ok"]
    assert session.fault_counts == {"throttle": 0}


def test_botocore_recovers_a_throttled_call_and_the_count_says_how_many_refusals(
    session: SandboxSession,
) -> None:
    fault = "throttle@dynamodb=0.5"
    seed = _seed_where(fault, [True, True, False], function="actor", service="dynamodb")
    inject(session, fault, seed=seed)
    results = act(
        session, ["put", "recovered-1"], retries={"mode": "standard", "total_max_attempts": 3}
    )
    assert results == ["ok"]
    assert keys(session, "recovered-") == ["recovered-1"]
    assert session.fault_counts == {"throttle": 2}


def test_an_outage_window_starts_and_ends_on_the_virtual_clock(session: SandboxSession) -> None:
    inject(session, "outage@dynamodb=10+60")
    assert act(session, ["put", "outage-before"]) == ["ok"]
    session.clock.advance(10)
    (during,) = act(session, ["put", "outage-during"])
    assert (during["error"], during["status"]) == ("InternalServerError", 500)
    session.clock.advance(59.5)
    assert act(session, ["put", "outage-still"])[0]["error"] == "InternalServerError"
    session.clock.advance(0.5)
    assert act(session, ["put", "outage-after"]) == ["ok"]
    assert keys(session, "outage-") == ["outage-after", "outage-before"]
    assert session.fault_counts == {"outage": 2}


def test_partial_put_events_puts_exactly_the_surviving_entries(session: SandboxSession) -> None:
    fault = "putevents-partial@actor=0.5"
    inject(session, fault, seed=3)
    before = dict(session.events)
    types = [f"Partial{i}" for i in range(8)]
    (result,) = act(session, ["events", types])
    entries = result["Entries"]
    failed = [t for t, e in zip(types, entries, strict=True) if "ErrorCode" in e]
    surviving = [t for t, e in zip(types, entries, strict=True) if "EventId" in e]
    assert 0 < len(failed) < len(types)  # seed 3 fails some, not all
    assert result["FailedEntryCount"] == len(failed)
    assert all(
        e == {"ErrorCode": "InternalFailure", "ErrorMessage": "Internal service failure."}
        for e in entries
        if "ErrorCode" in e
    )
    session.run_until_quiet()
    put = {t for t, n in session.events.items() if n > before.get(t, 0)}
    assert put == set(surviving)
    assert session.fault_counts == {"putevents-partial": len(failed)}


def test_every_entry_failed_is_a_put_events_with_nothing_put(session: SandboxSession) -> None:
    inject(session, "putevents-partial=1")
    before = dict(session.events)
    (result,) = act(session, ["events", ["AllFailed1", "AllFailed2"]])
    assert result["FailedEntryCount"] == 2
    assert [e["ErrorCode"] for e in result["Entries"]] == ["InternalFailure"] * 2
    session.run_until_quiet()
    assert dict(session.events) == before


def test_a_transaction_conflict_cancels_the_whole_transaction_as_dynamodb_does(
    session: SandboxSession,
) -> None:
    inject(session, "txn-conflict=1")
    (result,) = act(session, ["transact", ["txn-a", "txn-b"]])
    assert result["error"] == "TransactionCanceledException"
    codes = [r["Code"] for r in result["reasons"]]
    assert sorted(codes) == ["None", "TransactionConflict"]
    conflict = next(r for r in result["reasons"] if r["Code"] == "TransactionConflict")
    assert conflict["Message"] == "Transaction is ongoing for the item"
    assert result["message"] == (
        "Transaction cancelled, please refer cancellation reasons for specific reasons "
        f"[{', '.join(codes)}]"
    )
    assert keys(session, "txn-") == []
    inject(session, "txn-conflict=0")
    assert act(session, ["transact", ["txn-a", "txn-b"]]) == ["ok"]
    assert keys(session, "txn-") == ["txn-a", "txn-b"]


# ------------------------------------------------------------------ invocations


def test_a_lost_reply_to_a_synchronous_invoke_is_a_read_timeout_retried_by_botocore(
    session: SandboxSession,
) -> None:
    """The helper runs to its end each time (its write stands); the actor's boto3
    client sees ReadTimeoutError and retries it, which runs the helper again."""
    inject(session, "lost-reply@helper=1")
    before = session.invocations.get("helper", 0)
    (result,) = act(
        session,
        ["invoke", {"steps": [["put", "lost-sync"]]}],
        retries={"mode": "standard", "total_max_attempts": 2},
    )
    assert result["error"] == "ReadTimeoutError"
    assert result["message"].startswith("Read timeout on endpoint URL")
    assert session.invocations["helper"] - before == 2
    assert keys(session, "lost-sync") == ["lost-sync"]
    assert session.fault_counts == {"lost-reply": 2}


def test_a_lost_reply_to_a_step_functions_task_is_the_functions_timeout(
    session: SandboxSession,
) -> None:
    inject(session, "lost-reply@helper=1")
    execution = _run_flow(session, {"steps": [["put", "lost-sfn"]]})
    assert execution["status"] == "FAILED"
    assert execution["error"] == "Sandbox.Timedout"
    assert "Task timed out after 5.00 seconds" in execution["cause"]
    assert keys(session, "lost-sfn") == ["lost-sfn"]
    assert session.fault_counts == {"lost-reply": 1}


def test_step_functions_sees_lambdas_throttling_and_outage_errors(
    session: SandboxSession,
) -> None:
    inject(session, "throttle@lambda=1")
    execution = _run_flow(session, {"steps": [["put", "sfn-throttled"]]})
    assert (execution["status"], execution["error"]) == (
        "FAILED",
        "Lambda.TooManyRequestsException",
    )
    inject(session, "outage@lambda=0+60")
    execution = _run_flow(session, {"steps": [["put", "sfn-outage"]]})
    assert (execution["status"], execution["error"]) == ("FAILED", "Lambda.ServiceException")
    assert keys(session, "sfn-") == []


def _run_flow(session: SandboxSession, payload: Any) -> dict[str, Any]:
    sfn = session.client("stepfunctions")
    arn = sfn.start_execution(
        stateMachineArn=session.outputs["stateMachineArn"],
        name=f"run-{uuid.uuid4().hex[:12]}",
        input=json.dumps(payload),
    )["executionArn"]
    session.run_until_quiet()
    return dict(sfn.describe_execution(executionArn=arn))


def test_a_lost_reply_to_the_sqs_poller_leaves_the_writes_and_the_message_comes_back(
    session: SandboxSession,
) -> None:
    """Each delivery's write stands; the poller saw a timeout, so the message was not
    deleted: received again after its visibility timeout, then dead-lettered after
    maxReceiveCount (2) receives."""
    inject(session, "lost-reply@consumer=1")
    session.send_message("work", "lost-poll")
    session.run_until_quiet()
    (item,) = [i for i in session.scan("items") if i["pk"] == "msg#lost-poll"]
    assert item["deliveries"] == 2
    assert session.fault_counts == {"lost-reply": 2}
    dead = session.client("sqs").receive_message(QueueUrl=_dlq_url(session), MaxNumberOfMessages=10)
    assert [m["Body"] for m in dead.get("Messages", [])] == ["lost-poll"]


def test_a_lost_reply_to_an_asynchronous_invocation_is_retried_by_lambda(
    session: SandboxSession,
) -> None:
    """Invoke(Event): every attempt runs to its end, but Lambda saw each time out, so
    it retries the event twice (the function's default), then gives up."""
    inject(session, "lost-reply@helper=1")
    before = session.invocations.get("helper", 0)
    session.client("lambda").invoke(
        FunctionName=session.function_name("helper"),
        InvocationType="Event",
        Payload=json.dumps({"steps": [["put", "lost-async"]]}).encode(),
    )
    session.run_until_quiet()
    assert session.invocations["helper"] - before == 3
    assert keys(session, "lost-async") == ["lost-async"]
    assert session.fault_counts == {"lost-reply": 3}


def test_a_throttled_lambda_refuses_the_pollers_invocations(session: SandboxSession) -> None:
    inject(session, "throttle@lambda=1")
    before = session.invocations.get("consumer", 0)
    session.send_message("work", "throttled-poll")
    session.run_until_quiet()
    assert session.invocations.get("consumer", 0) == before  # never ran
    assert not [i for i in session.scan("items") if i["pk"] == "msg#throttled-poll"]
    assert session.fault_counts == {"throttle": 2}  # one per receive, then the DLQ


def _dlq_url(session: SandboxSession) -> str:
    (url,) = [
        u
        for u in session.client("sqs").list_queues()["QueueUrls"]
        if "work" in u.rsplit("/", 1)[1] and "dlq" in u.rsplit("/", 1)[1]
    ]
    return str(url)


def test_timeout_mid_stops_the_function_right_after_its_first_write_and_discards_it(
    session: SandboxSession,
) -> None:
    inject(session, "timeout-mid@actor=1")
    warm = session.runtime.warm_containers(session.function_name("actor"))
    result = session.invoke(
        "actor", {"steps": [["put", "mid-1"], ["put", "mid-2"], ["put", "mid-3"]]}
    )
    assert result.error_type == "Sandbox.Timedout"
    assert result.error_message is not None
    assert result.error_message.endswith("Task timed out after 5.00 seconds")
    assert keys(session, "mid-") == ["mid-1"]
    assert session.fault_counts == {"timeout-mid": 1}
    # Its execution environment is not reused (the next invocation starts cold).
    assert session.runtime.warm_containers(session.function_name("actor")) == max(0, warm - 1)


def test_timeout_mid_leaves_powertools_in_progress_record_as_a_real_timeout_does(
    session: SandboxSession,
) -> None:
    """The first write is Powertools' INPROGRESS record; the handler never runs, the
    record stays (nothing deletes it: no `except Exception` ran), so a retry within the
    timeout is refused as already in progress."""
    fault = "timeout-mid@guarded=0.5"
    seed = _seed_where(fault, [True, False], function="guarded", service="lambda")
    inject(session, fault, seed=seed)
    first = session.invoke("guarded", {"id": "g-1"})
    assert first.error_type == "Sandbox.Timedout"
    (record,) = session.scan("idempotency")
    assert record["status"] == "INPROGRESS"
    assert keys(session, "guarded#") == []
    retry = session.invoke("guarded", {"id": "g-1"})
    assert retry.error_type == "IdempotencyAlreadyInProgressError"
    assert session.fault_counts == {"timeout-mid": 1}
