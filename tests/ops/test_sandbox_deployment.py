"""`python -m ops` against the real program deployed into the sandbox (`__main__.py`,
stack dev, IAM enforced, functions run by the sandbox's Lambda runtime, events
delivered by its `Delivery`): the outputs the program exports are what ops reads, and
every command works on the resources it creates. ops runs as the sandbox's
administrator, with the outputs as `pulumi stack output --json` would print them.

One test (deploying the whole system takes most of a minute): the steps share the
deployment and follow an operator's session.
"""

from __future__ import annotations

import io
import json
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from contracts import sample_event
from eventcraft_sandbox.clock import Scheduler, VirtualClock
from eventcraft_sandbox.delivery import Delivery
from eventcraft_sandbox.lambda_runtime import LambdaRuntime
from eventcraft_sandbox.moto_deploy import Sandbox
from ops.aws import Clients
from ops.cli import main
from ops.outputs import DLQ_KINDS, parse
from tests.conftest import ROOT
from tests.ops.conftest import Run

PROGRAM: Path | Callable[[], Any] = ROOT / "__main__.py"


def test_ops_operates_the_sandbox_deployment(tmp_path: Path) -> None:
    with Sandbox() as sandbox:
        deployment = sandbox.deploy(PROGRAM, stack="dev")
        if "busName" not in deployment.outputs:
            pytest.skip("__main__.py does not declare the system yet (no busName output)")
        outputs_file = tmp_path / "outputs.json"
        outputs_file.write_text(json.dumps(deployment.outputs))
        clock = VirtualClock()
        runtime = LambdaRuntime(admin=sandbox.admin, clock=clock)
        delivery = Delivery(Scheduler(clock), runtime, deployment.records, sandbox)
        runtime.event_dispatcher = delivery.dispatch_event

        def deliver(seconds: float = 0.0) -> None:
            delivery.run_until_quiet()

        def ops(*argv: str) -> Run:
            out, err = io.StringIO(), io.StringIO()
            code = main(
                [*argv, "--outputs", str(outputs_file), "--json"],
                clients=Clients(session=sandbox.new_session()),
                stdout=out,
                stderr=err,
                # A watch loop's wait lets the sandbox deliver what is due.
                sleep=deliver,
            )
            return Run(code, out.getvalue(), err.getvalue())

        with runtime, delivery:
            # The outputs name everything ops needs.
            outputs = parse(deployment.outputs, origin="sandbox")
            bus = outputs.require_bus("test")
            assert outputs.require_archive("test")
            for role in ("orders", "events", "history"):
                assert outputs.require_table(role, "test")
            dlqs = outputs.all_dlqs()
            assert dlqs and all(d.kind in DLQ_KINDS for d in dlqs)

            # dlq list: every DLQ of the stack, all empty.
            listed = ops("dlq", "list")
            assert listed.code == 0, listed.err
            assert {row["name"] for row in listed.json()["dlqs"]} == {d.name for d in dlqs}
            assert listed.json()["totalMessages"] == 0

            # An order placed through the entry function; order show tells its story.
            placed = sandbox.client("lambda").invoke(
                FunctionName=outputs.functions["place-order"],
                Payload=json.dumps(
                    {
                        "clientRequestId": f"ops-{uuid.uuid4()}",
                        "customerId": "customer-0001",
                        "items": [{"sku": "sku-red-mug", "quantity": 1, "unitPriceCents": 1250}],
                    }
                ).encode(),
            )
            order_id = json.loads(placed["Payload"].read())["orderId"]
            deliver()
            shown = ops("order", "show", order_id)
            assert shown.code == 0, shown.err
            order = shown.json()
            assert order["saga"]["found"] and order["saga"]["orderId"] == order_id
            assert order["events"][0]["type"] == "OrderPlaced"
            assert order["readModel"]["lag"] == 0
            if order_id[-1] in "89abcdef":  # `both` routes these to the orchestrator
                [execution] = order["stepFunctions"]["executions"]
                assert execution["status"] in ("SUCCEEDED", "FAILED")

            # events put: a contract-checked event reaches the rules (here: the history).
            detail = sample_event("OrderEnriched", orderId=order_id, eventId=str(uuid.uuid4()))
            put = ops(
                "events", "put", "--detail-type", "OrderEnriched", "--detail",
                json.dumps(detail["detail"]),
            )  # fmt: skip
            assert put.code == 0, put.err
            deliver()
            history = ops("order", "show", order_id).json()["events"]
            assert detail["detail"]["eventId"] in {e["eventId"] for e in history}

            # A rule target's DLQ: inspect leaves the message, redrive puts it on the bus.
            target_dlq = next(d for d in dlqs if d.kind == "rule-target")
            sandbox.client("sqs").send_message(
                QueueUrl=target_dlq.url,
                MessageBody=json.dumps(detail),
                MessageAttributes={
                    "ERROR_CODE": {"DataType": "String", "StringValue": "Lambda.Throttled"},
                    "RULE_ARN": {
                        "DataType": "String",
                        "StringValue": f"arn:aws:events:::rule/{bus}/x",
                    },
                },
            )
            inspected = ops("dlq", "inspect", target_dlq.name)
            assert inspected.code == 0, inspected.err
            assert inspected.json()["byError"] == {"Lambda.Throttled": 1}
            # moto makes a message visible when its clock is PAST the visibility deadline;
            # the sandbox's virtual clock stands still between deliveries, so a visibility
            # of 0 takes effect once it moves on (on AWS: at once).
            clock.advance(1)
            redriven = ops("dlq", "redrive", target_dlq.name)
            assert redriven.code == 0, redriven.err
            assert redriven.json()["byTarget"] == {f"bus:{bus}": 1}, redriven.out
            deliver()
            assert ops("dlq", "list").json()["totalMessages"] == 0  # consumers deduplicated

            # A work queue's DLQ goes back to its queue (the outputs name the source).
            work = next(d for d in dlqs if d.kind == "queue" and d.name.startswith("progress"))
            sandbox.client("sqs").send_message(QueueUrl=work.url, MessageBody=json.dumps(detail))
            moved = ops("dlq", "redrive", work.name)
            assert moved.code == 0, moved.err
            assert moved.json()["byTarget"] == {f"queue:{work.source}": 1}

            # Replay the last hour to one rule, and watch it to the end.
            rules = sandbox.client("events").list_rules(EventBusName=bus)["Rules"]
            history_rule = next(r["Name"] for r in rules if "history" in r["Name"])
            start = (datetime.now(UTC) - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
            replayed = ops(
                "replay", "start", "--from", start, "--to", "now", "--rules", history_rule,
                "--name", "ops-e2e", "--watch", "--interval", "1", "--timeout", "60",
            )  # fmt: skip
            assert replayed.code == 0, replayed.err
            assert replayed.json()["watch"]["state"] == "COMPLETED"
