"""The `concurrency=N` fault (`eventcraft_sandbox.faults`): up to N invocations of a
function in flight at once, their AWS calls interleaved, each in its own execution
environment; reserved concurrency and an SQS mapping's MaximumConcurrency honoured, and
throttling as Lambda throttles.

ONE session (module scope) of a small program whose functions share one handler,
`work`: each job it is given (an SQS message, a Kinesis record, or the event itself)
marks itself in flight (an atomic counter), records the most in flight it saw (a
conditional `peak`), records its execution environment, then increments a counter
`increments` times, by reading it and writing it back, unconditionally or (`guarded`)
with a condition that it has not changed, retried when it has. A lost update, a
counter below the increments made, proves two invocations really ran at once; the peak
shows how many. Every job is under a `run` of its own, so the tests share the deploy.
Each test swaps the session's fault plan (`inject`); the seeds are fixed, so every
interleaving is the same at each run.
"""

from __future__ import annotations

import json
import uuid
from collections import Counter
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pulumi
import pytest
from botocore.exceptions import ClientError

from eventcraft_sandbox.faults import FaultPlan
from eventcraft_sandbox.session import SandboxSession
from pulumi_eventcraft.event_source import (
    EventSourceMapping,
    EventSourceMappingArgs,
    KinesisSource,
    SqsSource,
)
from pulumi_eventcraft.function import Function, FunctionArgs
from pulumi_eventcraft.queue import Queue, QueueArgs
from pulumi_eventcraft.state_machine import StateMachine, StateMachineArgs
from pulumi_eventcraft.stream import Stream, StreamArgs
from pulumi_eventcraft.table import KeyAttribute, Table, TableArgs
from tests.sandbox.host_layers import host_release_layer

WORK = """
import base64
import json
import os
import sys
import uuid

import boto3
from botocore.exceptions import ClientError

TABLE = os.environ["TABLE"]
ENVIRONMENT = uuid.uuid4().hex  # one per execution environment (module state)
THIS = sys.modules[__name__]


def handler(event, context):
    ddb = boto3.client("dynamodb")
    session = boto3.DEFAULT_SESSION
    for job in jobs(event):
        work(ddb, job, context, session)


def jobs(event):
    if "Records" not in event:
        return [event]
    found = []
    for record in event["Records"]:
        if "body" in record:
            job = json.loads(record["body"])
            job["receives"] = int(record["attributes"]["ApproximateReceiveCount"])
        else:
            job = json.loads(base64.b64decode(record["kinesis"]["data"]))
        found.append(job)
    return found


def work(ddb, job, context, session):
    run = job["run"]

    def check():
        # Whatever ran between two of its calls, this invocation sees its own state.
        assert os.environ["AWS_LAMBDA_FUNCTION_NAME"] == context.function_name, "environ"
        assert sys.modules[__name__] is THIS, "modules"
        assert boto3.DEFAULT_SESSION is session, "boto3 session"

    def call(method, **params):
        result = getattr(ddb, method)(TableName=TABLE, **params)
        check()
        return result

    in_flight = call(
        "update_item",
        Key={"pk": {"S": f"{run}#in-flight"}},
        UpdateExpression="ADD n :one",
        ExpressionAttributeValues={":one": {"N": "1"}},
        ReturnValues="UPDATED_NEW",
    )["Attributes"]["n"]["N"]
    try:
        call(
            "update_item",
            Key={"pk": {"S": f"{run}#peak"}},
            UpdateExpression="SET n = :n",
            ConditionExpression="attribute_not_exists(n) OR n < :n",
            ExpressionAttributeValues={":n": {"N": in_flight}},
        )
    except ClientError as exc:
        if exc.response["Error"]["Code"] != "ConditionalCheckFailedException":
            raise
    call("put_item", Item={"pk": {"S": f"{run}#environment#{ENVIRONMENT}"}})
    if "n" in job:  # the order the jobs of a run ran in
        call(
            "update_item",
            Key={"pk": {"S": f"{run}#order"}},
            UpdateExpression="SET seq = list_append(if_not_exists(seq, :empty), :n)",
            ExpressionAttributeValues={":empty": {"L": []}, ":n": {"L": [{"N": str(job["n"])}]}},
        )
    if "receives" in job:
        call(
            "update_item",
            Key={"pk": {"S": f"{run}#receives"}},
            UpdateExpression="ADD counts :count",
            ExpressionAttributeValues={":count": {"NS": [str(job["receives"])]}},
        )
    for _ in range(job.get("increments", 0)):
        increment(call, f"{run}#counter", job.get("guarded", False))
    call(
        "update_item",
        Key={"pk": {"S": f"{run}#in-flight"}},
        UpdateExpression="ADD n :minus",
        ExpressionAttributeValues={":minus": {"N": "-1"}},
    )


def increment(call, key, guarded):
    while True:
        item = call("get_item", Key={"pk": {"S": key}}, ConsistentRead=True).get("Item")
        n = int(item["n"]["N"]) if item else 0
        params = {"Item": {"pk": {"S": key}, "n": {"N": str(n + 1)}}}
        if guarded:
            params["ConditionExpression"] = "attribute_not_exists(n) OR n = :n"
            params["ExpressionAttributeValues"] = {":n": {"N": str(n)}}
        try:
            call("put_item", **params)
            return
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "ConditionalCheckFailedException":
                raise
"""

CALL = """
import json
import os

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

CLIENT = boto3.client("lambda", config=Config(retries={"total_max_attempts": 1}))


def handler(event, context):
    if not event.get("depth"):
        return {"ran": context.function_name}
    try:
        response = CLIENT.invoke(
            FunctionName=context.function_name,
            Payload=json.dumps({"depth": event["depth"] - 1}).encode(),
        )
    except ClientError as exc:
        return {
            "error": exc.response["Error"]["Code"],
            "message": exc.response["Error"]["Message"],
            "status": exc.response["ResponseMetadata"]["HTTPStatusCode"],
            "reason": exc.response.get("Reason"),
        }
    return json.loads(response["Payload"].read())
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
    boto3.client("dynamodb").update_item(
        TableName=os.environ["TABLE"],
        Key={"pk": {"S": "guarded#" + event["id"]}},
        UpdateExpression="ADD effects :one",
        ExpressionAttributeValues={":one": {"N": "1"}},
    )
    return {"done": event["id"]}
"""

# Kinesis hash keys that land on the first and the second of two even shards.
SHARD_KEYS = ("0", str(2**127 + 1))


def _program(code_dir: Path, layer_dir: Path) -> Any:
    def program() -> None:
        powertools = host_release_layer("powertools", layer_dir, "aws-lambda-powertools")
        items = Table("items", TableArgs(hash_key=KeyAttribute("pk")))
        idempotency = Table("idempotency", TableArgs(hash_key=KeyAttribute("id")))
        records = Stream("records", StreamArgs(mode="PROVISIONED", shard_count=2, alarms=False))

        def function(name: str, module: str, **environment: Any) -> Function:
            made = Function(
                name,
                FunctionArgs(
                    handler=f"handlers.{module}.handler",
                    timeout_seconds=10,
                    code_dir=code_dir,
                    layer=powertools,
                    alarms=False,
                    environment={"TABLE": items.name, **environment},
                ),
            )
            made.grant_read_write(items)
            return made

        def queue(name: str, **args: Any) -> Queue:
            return Queue(
                name,
                QueueArgs(
                    visibility_timeout_seconds=60,
                    max_receive_count=5,
                    alarms=False,
                    receive_wait_time_seconds=0,
                    **args,
                ),
            )

        def consumer(name: str, source: Any) -> Function:
            made = function(name, "work")
            EventSourceMapping(
                f"{name}-mapping",
                EventSourceMappingArgs(function=made, source=source, alarms=False),
            )
            return made

        work, capped, ordered = queue("work"), queue("capped"), queue("ordered", fifo=True)
        worker = consumer("worker", SqsSource(queue=work, batch_size=1))
        capped_worker = consumer(
            "capped", SqsSource(queue=capped, batch_size=1, maximum_concurrency=2)
        )
        ordered_worker = consumer("ordered", SqsSource(queue=ordered, batch_size=1))
        sharded = consumer(
            "sharded",
            KinesisSource(
                stream=records, batch_size=10, maximum_retry_attempts=0, bisect_on_error=False
            ),
        )
        background = function("background", "work")
        caller = function("caller", "call")
        caller.grant_invoke(caller)
        guarded = function("guarded", "guarded", IDEMPOTENCY_TABLE=idempotency.name)
        guarded.grant_read_write(idempotency)
        flow = StateMachine(
            "flow",
            StateMachineArgs(
                definition={
                    "StartAt": "Work",
                    "States": {
                        "Work": {
                            "Type": "Task",
                            "Resource": "arn:aws:states:::lambda:invoke",
                            "Parameters": {"FunctionName": background.arn, "Payload.$": "$"},
                            "End": True,
                        }
                    },
                },
                task_function_arns=[background.arn],
                alarms=False,
            ),
        )
        legacy = StateMachine(  # the Task's Resource is the function's ARN
            "legacy",
            StateMachineArgs(
                definition={
                    "StartAt": "Work",
                    "States": {"Work": {"Type": "Task", "Resource": background.arn, "End": True}},
                },
                task_function_arns=[background.arn],
                alarms=False,
            ),
        )
        functions = {
            "worker": worker,
            "capped": capped_worker,
            "ordered": ordered_worker,
            "sharded": sharded,
            "background": background,
            "caller": caller,
            "guarded": guarded,
        }
        pulumi.export("functions", {short: f.name for short, f in functions.items()})
        pulumi.export("tables", {"items": items.name, "idempotency": idempotency.name})
        pulumi.export(
            "queues",
            {
                "work": {"url": work.url},
                "capped": {"url": capped.url},
                "ordered": {"url": ordered.url},
            },
        )
        pulumi.export("streamName", records.name)
        pulumi.export("stateMachineArns", {"flow": flow.arn, "legacy": legacy.arn})

    return program


@pytest.fixture(scope="module")
def session(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SandboxSession]:
    code_dir = tmp_path_factory.mktemp("concurrency-code")
    handlers = code_dir / "handlers"
    handlers.mkdir()
    (handlers / "__init__.py").write_text("")
    (handlers / "work.py").write_text(WORK)
    (handlers / "call.py").write_text(CALL)
    (handlers / "guarded.py").write_text(GUARDED)
    layer_dir = tmp_path_factory.mktemp("concurrency-layer")
    with SandboxSession(_program(code_dir, layer_dir), "dev", project="concurrency") as running:
        # No retries: an asynchronous event that used up its attempt is dropped.
        running.client("lambda").put_function_event_invoke_config(
            FunctionName=running.function_name("background"), MaximumRetryAttempts=0
        )
        yield running


def inject(session: SandboxSession, *faults: str, seed: int = 0) -> FaultPlan:
    """Swap the session's faults (the runtime's and the delivery's) for these."""
    plan = FaultPlan.parse(faults, seed=seed)
    plan.validate_targets(list(session.outputs["functions"]))
    plan.start = session.clock.now()
    assert session.fault_injector is not None
    session.faults = session.fault_injector.plan = session.delivery.ctx.faults = plan
    return plan


def new_run() -> str:
    return f"run-{uuid.uuid4().hex[:8]}"


def send(session: SandboxSession, queue: str, *jobs: dict[str, Any], **params: Any) -> None:
    for job in jobs:
        session.send_message(queue, json.dumps(job), **params)


def observed(session: SandboxSession, run: str) -> dict[str, Any]:
    """What the jobs of `run` recorded: `counter`, `peak` (most in flight seen),
    `in_flight` (left at the end: 0), `environments` (how many execution environments
    ran them) and `receives` (the ApproximateReceiveCounts seen)."""
    items = {i["pk"]: i for i in session.scan("items") if str(i["pk"]).startswith(f"{run}#")}
    return {
        "counter": items.get(f"{run}#counter", {}).get("n", 0),
        "peak": items.get(f"{run}#peak", {}).get("n", 0),
        "in_flight": items.get(f"{run}#in-flight", {}).get("n", 0),
        "environments": sum(1 for key in items if key.startswith(f"{run}#environment#")),
        "receives": sorted(items.get(f"{run}#receives", {}).get("counts", [])),
        "order": items.get(f"{run}#order", {}).get("seq", []),
    }


def log_outcomes(session: SandboxSession, kind: str, function: str) -> Counter[str]:
    deployed = session.function_name(function)
    return Counter(
        e.outcome for e in session.delivery.log if e.kind == kind and e.target == deployed
    )


def errors(session: SandboxSession, function: str) -> int:
    return session.invocation_errors.get(function, 0)


# ------------------------------------------------------------------ overlap


def test_without_the_fault_invocations_run_one_at_a_time_and_no_update_is_lost(
    session: SandboxSession,
) -> None:
    inject(session)
    run = new_run()
    send(session, "work", *[{"run": run, "increments": 4}] * 3)
    session.run_until_quiet()
    seen = observed(session, run)
    assert (seen["counter"], seen["peak"], seen["in_flight"]) == (12, 1, 0)
    assert seen["environments"] == 1  # one warm environment served them all


@pytest.mark.parametrize("fault", ["concurrency=2", "concurrency@worker=2"])
def test_two_invocations_in_flight_interleave_and_an_unconditional_increment_loses_updates(
    session: SandboxSession, fault: str
) -> None:
    """concurrency=2: the poller takes two batches at once; both read the counter
    before the other wrote it back, so increments are lost: the race is real."""
    inject(session, fault, seed=1)
    errors_before = errors(session, "worker")
    run = new_run()
    send(session, "work", *[{"run": run, "increments": 5}] * 2)
    session.run_until_quiet()
    seen = observed(session, run)
    assert seen["peak"] == 2
    assert seen["counter"] < 10, seen
    assert seen["environments"] == 2  # each in an execution environment of its own
    assert session.fault_counts == {"concurrency": 1}  # the second overlapped the first
    # Each saw its own environ, modules and boto3 session at every call (`check`).
    assert errors(session, "worker") == errors_before


def test_a_conditional_write_keeps_every_update_under_concurrency(
    session: SandboxSession,
) -> None:
    inject(session, "concurrency=2", seed=1)
    run = new_run()
    send(session, "work", *[{"run": run, "increments": 5, "guarded": True}] * 2)
    session.run_until_quiet()
    seen = observed(session, run)
    assert (seen["counter"], seen["peak"]) == (10, 2)


def test_n_bounds_the_invocations_in_flight_and_each_overlap_is_counted(
    session: SandboxSession,
) -> None:
    """concurrency=3, nine messages: three polls of three batches, never more than
    three in flight, three warm environments reused; each launch of three counts two
    invocations that started while another was in flight."""
    inject(session, "concurrency=3", seed=2)
    run = new_run()
    send(session, "work", *[{"run": run, "increments": 2, "guarded": True}] * 9)
    session.run_until_quiet()
    seen = observed(session, run)
    assert (seen["counter"], seen["peak"], seen["in_flight"]) == (18, 3, 0)
    assert seen["environments"] == 3
    assert session.runtime.warm_containers(session.function_name("worker")) == 3
    assert session.fault_counts == {"concurrency": 6}
    assert seen["receives"] == [1]  # no batch was taken without a slot for it


def test_a_fault_on_another_function_leaves_this_one_serial(session: SandboxSession) -> None:
    inject(session, "concurrency@capped=4", seed=1)
    run = new_run()
    send(session, "work", *[{"run": run, "increments": 3}] * 3)
    session.run_until_quiet()
    seen = observed(session, run)
    assert (seen["counter"], seen["peak"]) == (9, 1)
    assert session.fault_counts == {"concurrency": 0}


def test_maximum_concurrency_bounds_an_sqs_poller_which_never_takes_a_batch_without_a_slot(
    session: SandboxSession,
) -> None:
    """concurrency=4, but the mapping's ScalingConfig.MaximumConcurrency is 2: two
    batches at a time, none throttled, every message received once."""
    inject(session, "concurrency=4", seed=3)
    run = new_run()
    send(session, "capped", *[{"run": run, "increments": 2, "guarded": True}] * 6)
    session.run_until_quiet()
    seen = observed(session, run)
    assert (seen["counter"], seen["peak"]) == (12, 2)
    assert seen["receives"] == [1]
    assert log_outcomes(session, "sqs.batch", "capped") == {"ok": 6}
    assert session.runtime.concurrency.throttles[session.function_name("capped")] == 0


def test_a_fifo_queues_batches_overlap_across_message_groups_only(
    session: SandboxSession,
) -> None:
    """concurrency=4 on a FIFO queue with two message groups: two batches in flight
    (one per group), and each group's messages in the order they were sent."""
    inject(session, "concurrency=4", seed=4)
    run = new_run()
    for group in ("a", "b"):
        for n in range(3):
            session.send_message(
                "ordered",
                json.dumps({"run": f"{run}-{group}", "increments": 1, "guarded": True, "n": n}),
                MessageGroupId=group,
                MessageDeduplicationId=f"{run}-{group}-{n}",
            )
    session.send_message(
        "ordered",
        json.dumps({"run": run, "increments": 0}),
        MessageGroupId="probe",
        MessageDeduplicationId=f"{run}-probe",
    )
    session.run_until_quiet()
    for group in ("a", "b"):
        seen = observed(session, f"{run}-{group}")
        assert (seen["counter"], seen["peak"], seen["order"]) == (3, 1, [0, 1, 2])
    deployed = session.function_name("ordered")
    assert session.runtime.concurrency.peaks[deployed] == 3  # groups a, b and probe


def test_asynchronous_events_due_together_run_n_at_a_time_without_throttles(
    session: SandboxSession,
) -> None:
    """concurrency=2, six events queued at once: the queue starts two at a time (as
    Lambda's pollers scale to the concurrency available), all at the same instant;
    none is throttled, none waits."""
    inject(session, "concurrency=2", seed=8)
    run = new_run()
    before = log_outcomes(session, "lambda.async", "background")
    started = session.clock.now()
    for _ in range(6):
        session.client("lambda").invoke(
            FunctionName=session.function_name("background"),
            InvocationType="Event",
            Payload=json.dumps({"run": run, "increments": 2, "guarded": True}).encode(),
        )
    session.run_until_quiet()
    seen = observed(session, run)
    assert (seen["counter"], seen["peak"], seen["environments"]) == (12, 2, 2)
    assert log_outcomes(session, "lambda.async", "background") - before == {"ok": 6}
    assert session.clock.now() == started
    assert session.fault_counts == {"concurrency": 3}


# ------------------------------------------------------------------ throttling


def test_a_synchronous_invoke_over_the_limit_gets_lambdas_429(session: SandboxSession) -> None:
    """concurrency@caller=1: the caller invoking itself is a second invocation in
    flight: Lambda answers 429 TooManyRequestsException; without the fault it runs."""
    inject(session)
    assert session.invoke("caller", {"depth": 1}).payload == {
        "ran": session.function_name("caller")
    }
    inject(session, "concurrency@caller=1")
    assert session.invoke("caller", {"depth": 1}).payload == {
        "error": "TooManyRequestsException",
        "message": "Rate Exceeded.",
        "status": 429,
        "reason": "ConcurrentInvocationLimitExceeded",
    }


def test_reserved_concurrency_0_throttles_every_invocation_as_lambda_does(
    session: SandboxSession,
) -> None:
    """Always on, fault or not: a client's Invoke gets 429, a Step Functions task
    fails with Lambda.TooManyRequestsException, whether its Resource is the
    `lambda:invoke` integration or the function's ARN (what a Retry on the Lambda errors
    AWS documents matches)."""
    inject(session)
    admin = session.client("lambda")
    name = session.function_name("background")
    admin.put_function_concurrency(FunctionName=name, ReservedConcurrentExecutions=0)
    invocations = session.invocations.get("background", 0)
    try:
        with pytest.raises(ClientError) as caught:
            admin.invoke(FunctionName=name, Payload=b'{"run": "refused"}')
        response = caught.value.response
        assert response["Error"] == {
            "Code": "TooManyRequestsException",
            "Message": "Rate Exceeded.",
        }
        assert response["ResponseMetadata"]["HTTPStatusCode"] == 429
        assert response["Reason"] == "ReservedFunctionConcurrentInvocationLimitExceeded"
        sfn = session.client("stepfunctions")
        executions = [
            sfn.start_execution(stateMachineArn=arn, input='{"run": "refused"}')["executionArn"]
            for arn in session.outputs["stateMachineArns"].values()
        ]
        session.run_until_quiet()
        for execution in executions:
            described = sfn.describe_execution(executionArn=execution)
            assert (described["status"], described["error"]) == (
                "FAILED",
                "Lambda.TooManyRequestsException",
            )
            assert described["cause"].startswith(
                "Rate Exceeded. (Service: AWSLambda; Status Code: 429"
            )
    finally:
        admin.delete_function_concurrency(FunctionName=name)
    assert observed(session, "refused")["environments"] == 0  # it never ran
    assert session.invocations.get("background", 0) == invocations  # nor counts as run
    attempts = response["ResponseMetadata"]["RetryAttempts"] + 1  # botocore retries a 429
    assert session.runtime.concurrency.throttles[name] == attempts + len(executions)


def test_reserved_concurrency_1_serialises_and_throttled_async_events_keep_their_attempts(
    session: SandboxSession,
) -> None:
    """concurrency=4 starts four asynchronous events together, but the function's
    reserved concurrency is 1: one runs, three are throttled and retried 1 s later
    (then 2 s ...) without using up an attempt (the function has 0 retries), until all
    four ran, one at a time."""
    inject(session, "concurrency=4", seed=5)
    admin = session.client("lambda")
    name = session.function_name("background")
    admin.put_function_concurrency(FunctionName=name, ReservedConcurrentExecutions=1)
    run = new_run()
    before = log_outcomes(session, "lambda.async", "background")
    try:
        for _ in range(4):
            admin.invoke(
                FunctionName=name,
                InvocationType="Event",
                Payload=json.dumps({"run": run, "increments": 3}).encode(),
            )
        session.run_until_quiet()
    finally:
        admin.delete_function_concurrency(FunctionName=name)
    seen = observed(session, run)
    assert (seen["counter"], seen["peak"]) == (12, 1)  # serial: nothing lost
    outcomes = log_outcomes(session, "lambda.async", "background") - before
    assert outcomes["ok"] == 4
    assert outcomes["throttled"] >= 3
    assert not {"failed", "dropped"} & set(outcomes)


def test_an_async_event_the_throttle_fault_refuses_is_retried_without_using_an_attempt(
    session: SandboxSession,
) -> None:
    """throttle@lambda refuses the first attempt: Lambda did not run it, so the event
    (0 retries configured) is tried again and runs, instead of being dropped."""
    fault = "throttle@lambda=0.5"
    inject(session, fault, seed=seed_where(fault, [True, False], service="lambda"))
    run = new_run()
    before = log_outcomes(session, "lambda.async", "background")
    session.client("lambda").invoke(
        FunctionName=session.function_name("background"),
        InvocationType="Event",
        Payload=json.dumps({"run": run, "increments": 1}).encode(),
    )
    session.run_until_quiet()
    assert observed(session, run)["counter"] == 1
    outcomes = log_outcomes(session, "lambda.async", "background") - before
    assert outcomes == {"throttled": 1, "ok": 1}


def seed_where(fault: str, draws: Sequence[bool], **scope: str) -> int:
    """A seed whose first draws of `fault` are `draws` (found with the plan's own draws)."""
    name = fault.split("=", 1)[0].split("@", 1)[0]
    for seed in range(1000):
        plan = FaultPlan.parse([fault], seed=seed)
        if [plan.draw(name, **scope) for _ in draws] == list(draws):
            return seed
    raise AssertionError(f"no seed below 1000 draws {draws} for {fault}")


def test_stream_shards_are_delivered_in_parallel_and_a_throttled_batch_is_retried(
    session: SandboxSession,
) -> None:
    """concurrency=2: both shards' batches run at once. With reserved concurrency 1,
    one shard's batch is throttled and retried (not a retry attempt: the mapping
    allows none) until every record is done, none discarded."""
    kinesis = session.client("kinesis")
    stream = session.outputs["streamName"]

    def put(run: str) -> None:
        for key in SHARD_KEYS:
            for _ in range(2):
                kinesis.put_record(
                    StreamName=stream,
                    Data=json.dumps({"run": run, "increments": 2, "guarded": True}).encode(),
                    PartitionKey="p",
                    ExplicitHashKey=key,
                )

    inject(session, "concurrency=2", seed=6)
    parallel = new_run()
    put(parallel)
    session.run_until_quiet()
    assert (observed(session, parallel)["counter"], observed(session, parallel)["peak"]) == (
        8,
        2,
    )

    admin = session.client("lambda")
    name = session.function_name("sharded")
    admin.put_function_concurrency(FunctionName=name, ReservedConcurrentExecutions=1)
    serial = new_run()
    before = log_outcomes(session, "stream.batch", "sharded")
    try:
        put(serial)
        session.run_until_quiet()
    finally:
        admin.delete_function_concurrency(FunctionName=name)
    assert (observed(session, serial)["counter"], observed(session, serial)["peak"]) == (8, 1)
    outcomes = log_outcomes(session, "stream.batch", "sharded") - before
    assert outcomes["throttled"] >= 1
    assert outcomes["ok"] == 2
    assert not [e for e in session.delivery.log if e.kind == "stream.discard"]


# ------------------------------------------------------------------ idempotency


def test_two_deliveries_of_one_event_at_once_one_is_refused_in_progress_and_retried(
    session: SandboxSession,
) -> None:
    """The same event queued twice (an at-least-once duplicate) runs twice at once
    under concurrency=2: Powertools' idempotency record is INPROGRESS when the second
    looks, so it fails with IdempotencyAlreadyInProgressError; Lambda retries it a
    minute later and it gets the first one's result. The effect happens once."""
    inject(session, "concurrency=2", seed=0)  # a seed whose turns interleave the two puts
    event_id = uuid.uuid4().hex[:8]
    name = session.function_name("guarded")
    for _ in range(2):
        session.client("lambda").invoke(
            FunctionName=name, InvocationType="Event", Payload=json.dumps({"id": event_id}).encode()
        )
    session.run_until_quiet()
    effects = [i for i in session.scan("items") if i["pk"] == f"guarded#{event_id}"]
    assert [i["effects"] for i in effects] == [1]
    entries = [
        e
        for e in session.delivery.log
        if e.kind == "lambda.async" and e.target == name and e.outcome in ("retry", "ok")
    ]
    assert Counter(e.outcome for e in entries) == {"retry": 1, "ok": 2}
    (refused,) = [e for e in entries if e.outcome == "retry"]
    assert "IdempotencyAlreadyInProgressError" in refused.detail
    assert session.fault_counts == {"concurrency": 1}
