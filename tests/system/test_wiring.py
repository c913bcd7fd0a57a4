"""Which rule routes which event to which target, with what pattern, in each saga mode
and stack; the orchestration saga's definition; what every function is configured with."""

from __future__ import annotations

import json
from typing import Any

import pytest

from contracts import json_schemas, sample_event
from eventcraft_sandbox.mock_deploy import ACCOUNT_ID
from order_saga.system import (
    CHOREOGRAPHY_DIGITS,
    CHOREOGRAPHY_RULES,
    CONFLICT_ERRORS,
    ORCHESTRATION_DIGITS,
    PAYMENT_TRANSIENT_ERRORS,
)
from pulumi_eventcraft.event_rule import MAX_TARGETS_PER_RULE
from pulumi_eventcraft.saga import STEP_RETRY, TIMEOUT_ERRORS, TRANSIENT_ERRORS
from tests.system.conftest import (
    ALARM,
    ALL_OPTIONS,
    FUNCTION,
    MAPPING,
    MODES,
    PARTNER_BUS,
    QUEUE,
    SAGA_EVENTS,
    STACKS,
    STATE_MACHINE,
    SYSTEM,
    TABLE,
    TARGET,
    System,
    deploy,
)

# short rule -> (detail-types, sources, [(target id, kind, handlers)])
CHOREOGRAPHY_ROUTES: dict[
    str, tuple[list[str], list[str], list[tuple[str, str, tuple[str, ...]]]]
] = {
    "reserve": (
        ["OrderPlaced"],
        ["order-saga.orders"],
        [("sqs", "sqs", ("handlers.reserve_inventory.handler",))],
    ),
    "pay": (
        ["InventoryReserved"],
        ["order-saga.inventory"],
        [("sqs", "sqs", ("handlers.process_payment.handler",))],
    ),
    "ship": (
        ["PaymentProcessed"],
        ["order-saga.payments"],
        [("lambda", "lambda", ("handlers.ship_order.handler",))],
    ),
    "release": (
        ["PaymentFailed", "ShippingFailed"],
        ["order-saga.payments", "order-saga.shipping"],
        [("lambda", "lambda", ("handlers.release_inventory.handler",))],
    ),
    "refund": (
        ["ShippingFailed"],
        ["order-saga.shipping"],
        [("lambda", "lambda", ("handlers.refund_payment.handler",))],
    ),
    "progress": (
        SAGA_EVENTS,
        ["order-saga.inventory", "order-saga.payments", "order-saga.shipping"],
        [("sqs", "sqs", ("handlers.saga_progress.handler",))],
    ),
}
SIDE_FLOW_TARGETS = {
    "enrich": [("lambda", "lambda", ("handlers.enrich_order.handler",))],
    "high-value": [("lambda", "lambda", ("handlers.high_value_review.handler",))],
    "checks": [
        ("inventory", "lambda", ("handlers.run_check.inventory_handler",)),
        ("credit", "lambda", ("handlers.run_check.credit_handler",)),
        ("shippingQuote", "lambda", ("handlers.run_check.shipping_quote_handler",)),
    ],
    "join": [("sqs", "sqs", ("handlers.aggregate_checks.handler",))],
    "history": [("lambda", "lambda", ("handlers.record_history.handler",))],
    "activity": [("kinesis", "kinesis", ("handlers.window_aggregate.handler",))],
    "import": [("lambda", "lambda", ("handlers.import_orders.handler",))],
}


# Every rule of the order bus matches only events this stack's account put.
OWN = {"account": [ACCOUNT_ID]}


def targets(system: System, short: str) -> list[tuple[str, str, tuple[str, ...]]]:
    return sorted((t.id, t.kind, t.handlers) for t in system.rules[short].targets)


def suffixes(digits: str) -> list[dict[str, str]]:
    return [{"suffix": d} for d in digits]


@pytest.mark.parametrize("stack", STACKS)
@pytest.mark.parametrize("mode", MODES)
def test_the_rules_of_each_mode(stack: str, mode: str) -> None:
    system = deploy(stack, mode)
    expected = set(SIDE_FLOW_TARGETS)
    if mode != "orchestration":
        expected |= set(CHOREOGRAPHY_ROUTES)
    if mode != "choreography":
        expected.add("orchestrate")
    assert set(system.rules) == expected
    assert (len(system.of_type(STATE_MACHINE)) == 1) is (mode != "choreography")
    for short, route in SIDE_FLOW_TARGETS.items():
        assert targets(system, short) == sorted(route), short


@pytest.mark.parametrize("mode", ["choreography", "both"])
def test_choreography_routes_each_saga_event_to_the_next_step(mode: str) -> None:
    system = deploy("dev", mode)
    # In `both`, every choreography rule takes only the orders ending 0-7.
    orders = {"detail": {"orderId": suffixes(CHOREOGRAPHY_DIGITS)}} if mode == "both" else {}
    for short, (types, sources, route) in CHOREOGRAPHY_ROUTES.items():
        rule = system.rules[short]
        assert rule.pattern == {"source": sources, "detail-type": types, **orders, **OWN}, short
        assert targets(system, short) == route, short


def test_payments_go_through_a_standard_queue_without_a_global_group() -> None:
    """One payment message that keeps failing must not hold the others: no FIFO group
    (EventBridge could only give one for every message), batches with partial failures."""
    system = deploy("dev", "choreography")
    target = system.rules["pay"].target("sqs")
    assert "sqsTarget" not in target.inputs
    queue = target.resource
    assert queue is not None and queue.typ == QUEUE
    assert not queue.inputs.get("fifoQueue")
    assert not queue.inputs.get("contentBasedDeduplication")
    batch_sizes = {
        m.name: (m.inputs["batchSize"], m.inputs.get("functionResponseTypes"))
        for m in system.of_type(MAPPING)
        if m.name.startswith(f"{SYSTEM}-payments-") or m.name.startswith(f"{SYSTEM}-reserve-")
    }
    assert sorted(batch_sizes.values()) == [(10, ["ReportBatchItemFailures"])] * 2, batch_sizes


def test_the_orchestration_saga_starts_on_the_orchestrated_orders() -> None:
    both = deploy("dev", "both").rules["orchestrate"]
    assert both.pattern == {
        "source": ["order-saga.orders"],
        "detail-type": ["OrderPlaced"],
        "detail": {"orderId": suffixes(ORCHESTRATION_DIGITS)},
        **OWN,
    }
    only = deploy("dev", "orchestration").rules["orchestrate"]
    assert only.pattern == {
        "source": ["order-saga.orders"],
        "detail-type": ["OrderPlaced"],
        **OWN,
    }
    (machine,) = deploy("dev", "orchestration").of_type(STATE_MACHINE)
    assert only.targets[0].arn == machine.arn
    assert only.targets[0].inputs["roleArn"]


@pytest.mark.parametrize("stack", STACKS)
def test_the_saga_state_machine(stack: str) -> None:
    system = deploy(stack, "orchestration")
    (machine,) = system.of_type(STATE_MACHINE)
    definition = json.loads(machine.inputs["definition"])
    states = definition["States"]
    arn = {
        short: system.function(short).arn
        for short in (
            "reserve-inventory-task",
            "process-payment-task",
            "ship-order-task",
            "release-inventory-task",
            "refund-payment-task",
            "record-outcome",
        )
    }
    assert definition["StartAt"] == "reserve"
    assert [states[s]["Next"] for s in ("reserve", "pay", "ship")] == [
        "pay",
        "ship",
        "SagaSucceeded",
    ]
    assert states["reserve"]["Resource"] == arn["reserve-inventory-task"]
    assert states["pay"]["Resource"] == arn["process-payment-task"]
    assert states["ship"]["Resource"] == arn["ship-order-task"]
    # Compensations: a failed step undoes itself first, then the earlier ones.
    assert states["CompensatePay"]["Resource"] == arn["refund-payment-task"]
    assert states["CompensateReserve"]["Resource"] == arn["release-inventory-task"]
    assert states["reserve"]["Catch"][0]["Next"] == "CompensateReserve"
    assert states["pay"]["Catch"][0]["Next"] == "CompensatePay"
    assert states["ship"]["Catch"][0]["Next"] == "CompensatePay"
    assert states["CompensatePay"]["Next"] == "CompensateReserve"
    # The handlers' transient errors are retried, and so is a throttled or failed AWS
    # call in a handler (an outage of minutes cancels no order); business failures are
    # not. Every step is idempotent: a lost reply (a timeout after it committed) is
    # retried too, never compensated while retries remain.
    assert states["pay"]["Retry"][0]["ErrorEquals"] == [
        *TRANSIENT_ERRORS,
        *PAYMENT_TRANSIENT_ERRORS,
        *TIMEOUT_ERRORS,
    ]
    for step in ("reserve", "ship"):
        assert states[step]["Retry"][0]["ErrorEquals"] == [
            *TRANSIENT_ERRORS,
            *CONFLICT_ERRORS,
            *TIMEOUT_ERRORS,
        ]
        assert states[step]["Retry"][0]["MaxAttempts"] == STEP_RETRY.max_attempts
    assert "ProvisionedThroughputExceededException" in TRANSIENT_ERRORS
    assert "TransactionThrottledError" in CONFLICT_ERRORS
    assert {"States.Timeout", "Sandbox.Timedout"} <= set(TIMEOUT_ERRORS)
    assert "PaymentDeclined" not in json.dumps(states["pay"]["Retry"])
    # The failure hook records CANCELLED, e.g. when reserve exhausted its retries.
    assert states["CompensateReserve"]["Next"] == "RecordFailure"
    assert states["RecordFailure"]["Resource"] == arn["record-outcome"]
    assert system.handler_of(arn["record-outcome"]) == "handlers.saga_progress.record_outcome"
    # STANDARD in both stacks: the saga can outlast an EXPRESS execution's 5 minutes.
    assert machine.inputs["type"] == "STANDARD"
    assert machine.inputs["loggingConfiguration"]["level"] == ("ALL" if stack == "dev" else "ERROR")


def test_the_high_value_route_compares_cents_and_the_handler_knows_the_threshold() -> None:
    for stack, cents in (("dev", 100_000), ("prod", 500_000)):
        system = deploy(stack)
        assert system.rules["high-value"].pattern == {
            "source": ["order-saga.orders"],
            "detail-type": ["OrderPlaced"],
            "detail": {"totalCents": [{"numeric": [">", cents]}]},
            **OWN,
        }
        env = system.function("high-value-review").inputs["environment"]["variables"]
        assert env["HIGH_VALUE_THRESHOLD_CENTS"] == str(cents)
        assert system.outputs["highValueThresholdCents"] == cents


def test_side_flows_see_every_order_whatever_the_mode() -> None:
    system = deploy("dev", "both")
    for short in ("enrich", "checks"):
        assert system.rules[short].pattern == {
            "source": ["order-saga.orders"],
            "detail-type": ["OrderPlaced"],
            **OWN,
        }
    assert system.rules["join"].pattern == {
        "source": ["order-saga.checks"],
        "detail-type": ["CheckCompleted"],
        **OWN,
    }
    history = system.rules["history"].pattern
    assert len(history["detail-type"]) == 15
    assert "detail" not in history


def test_the_activity_feed_is_compact_and_partitioned_by_customer() -> None:
    system = deploy("prod")
    rule = system.rules["activity"]
    assert rule.pattern == {
        "source": [{"prefix": "order-saga."}],
        "detail": {"orderId": [{"exists": True}], "customerId": [{"exists": True}]},
        **OWN,
    }
    target = rule.target("kinesis")
    assert target.inputs["kinesisTarget"] == {"partitionKeyPath": "$.detail.customerId"}
    transformer = target.inputs["inputTransformer"]
    assert transformer["inputPaths"] == {
        "detailType": "$.detail-type",
        "source": "$.source",
        "time": "$.time",
        "detail": "$.detail",
    }
    filled = (
        transformer["inputTemplate"]
        .replace("<detailType>", "OrderPlaced")
        .replace("<source>", "order-saga.orders")
        .replace("<time>", "2026-11-27T00:00:00Z")
        .replace("<detail>", '{"orderId": "o-1"}')
    )
    assert json.loads(filled) == {
        "detail-type": "OrderPlaced",
        "source": "order-saga.orders",
        "time": "2026-11-27T00:00:00Z",
        "detail": {"orderId": "o-1"},
    }
    (stream,) = system.of_type("aws:kinesis/stream:Stream")
    assert stream.inputs["shardCount"] == 2  # prod: activityStreamShards


def test_the_import_rule_lives_on_the_default_bus_and_matches_the_bucket_prefix() -> None:
    system = deploy("dev")
    rule = system.rules["import"]
    assert rule.bus == "default"
    (bucket,) = system.of_type("aws:s3/bucket:Bucket")
    prefix = bucket.inputs["bucketPrefix"]
    assert prefix == "order-saga-dev-saga-imports-"
    assert rule.pattern["detail"] == {"bucket": {"name": [{"prefix": prefix}]}}
    # The bucket: encrypted, private, versioned, sending its events to EventBridge.
    (encryption,) = system.of_type(
        "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration"
    )
    assert encryption.inputs["rules"][0]["applyServerSideEncryptionByDefault"] == {
        "sseAlgorithm": "AES256"
    }
    (block,) = system.of_type("aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock")
    assert all(
        block.inputs[k]
        for k in (
            "blockPublicAcls",
            "blockPublicPolicy",
            "ignorePublicAcls",
            "restrictPublicBuckets",
        )
    )
    (versioning,) = system.of_type("aws:s3/bucketVersioning:BucketVersioning")
    assert versioning.inputs["versioningConfiguration"] == {"status": "Enabled"}
    (notification,) = system.of_type("aws:s3/bucketNotification:BucketNotification")
    assert notification.inputs["eventbridge"] is True
    env = system.function("import-orders").inputs["environment"]["variables"]
    assert env["IMPORT_BUCKET"] == bucket.outputs["bucket"]


def test_every_rule_target_has_its_own_dlq_and_a_finite_retry_policy() -> None:
    system = deploy("dev", "both")
    scheduled = {rule.outputs["name"] for rule in system.scheduled_rules.values()}
    assert len(scheduled) == 1  # the outbox sweep
    targets: dict[str, list[dict[str, Any]]] = {
        short: [t.inputs for t in rule.targets] for short, rule in system.rules.items()
    }
    for target in system.of_type(TARGET):
        if target.inputs["rule"] in scheduled:
            targets.setdefault(target.inputs["rule"], []).append(target.inputs)
    dlqs = set()
    for rule, inputs in targets.items():
        assert len(inputs) <= MAX_TARGETS_PER_RULE
        for target in inputs:
            dlq = target["deadLetterConfig"]["arn"]
            assert dlq not in dlqs, f"{rule}/{target['targetId']} shares a DLQ"
            dlqs.add(dlq)
            assert target["retryPolicy"] == {
                "maximumRetryAttempts": 8,
                "maximumEventAgeInSeconds": 3600,
            }
    outputs = system.outputs["dlqs"]
    assert {v["arn"] for v in outputs.values() if v["kind"] == "rule-target"} == dlqs


def test_forwarding_and_partners_when_configured() -> None:
    system = deploy("dev", **ALL_OPTIONS)
    rule = system.rules["forward"]
    assert rule.pattern == {
        "source": ["order-saga.orders"],
        "detail-type": ["OrderCompleted", "OrderCancelled"],
        **OWN,
    }
    (target,) = rule.targets
    assert (target.id, target.arn) == ("bus", PARTNER_BUS)
    (policy,) = system.of_type("aws:cloudwatch/eventBusPolicy:EventBusPolicy")
    statements = json.loads(policy.inputs["policy"])["Statement"]
    # Partners may put only their own events (partnerSources, partnerDetailTypes).
    their_own = {
        "events:source": "partner.shipping",
        "events:detail-type": ["ParcelDelivered", "ParcelLost"],
    }
    assert statements[0]["Principal"] == {"AWS": "arn:aws:iam::111122223333:root"}
    assert statements[0]["Condition"] == {"StringEquals": their_own}
    assert statements[1]["Principal"] == "*"
    assert statements[1]["Condition"] == {
        "StringEquals": {"aws:PrincipalOrgID": "o-abcd123456", **their_own}
    }
    # Without them: no forward rule, no bus policy.
    plain = deploy("dev")
    assert "forward" not in plain.rules
    assert plain.of_type("aws:cloudwatch/eventBusPolicy:EventBusPolicy") == []


@pytest.mark.parametrize("mode", MODES)
def test_no_rule_of_the_order_bus_takes_an_event_from_another_account(mode: str) -> None:
    """A partner allowed on the bus, putting this system's own events (a forged
    PaymentProcessed for 1 cent, an OrderPlaced): no rule of the order bus matches them,
    while the same events from this account are routed."""
    system = deploy("dev", mode, **ALL_OPTIONS)
    for detail_type in ("OrderPlaced", "InventoryReserved", "PaymentProcessed", "ShippingFailed"):
        own = sample_event(detail_type, orderId="3c0a3b29-8f1e-4a55-9d7e-2f1b6c3d4e50")
        assert system.matching(own), detail_type
        forged = {**own, "account": "111122223333"}
        assert system.matching(forged) == set(), detail_type
    assert all("account" in rule.pattern for rule in system.bus_rules().values())


@pytest.mark.parametrize("stack", STACKS)
def test_the_bus_archives_and_publishes_the_contracts(stack: str) -> None:
    system = deploy(stack)
    (archive,) = system.of_type("aws:cloudwatch/eventArchive:EventArchive")
    assert archive.inputs["retentionDays"] == (7 if stack == "dev" else 365)
    # Exactly the contracts' draft 4 documents, one per detail-type.
    schemas = {
        s.inputs["name"]: json.loads(s.inputs["content"])
        for s in system.of_type("aws:schemas/schema:Schema")
    }
    assert schemas == json.loads(json.dumps(json_schemas()))
    assert len(schemas) == 15 and "OrderPlaced" in schemas


def test_each_table_has_the_layout_its_handlers_use() -> None:
    system = deploy("prod")
    tables = {t.name.removeprefix("saga-").removesuffix("-table"): t for t in system.of_type(TABLE)}
    keys = {role: (t.inputs["hashKey"], t.inputs.get("rangeKey")) for role, t in tables.items()}
    assert keys == {
        "orders": ("pk", None),
        "inventory": ("pk", None),
        "payments": ("pk", None),
        "shipments": ("pk", None),
        "outbox": ("pk", None),
        "idempotency": ("id", None),
        "events": ("aggregateId", "version"),
        "snapshots": ("aggregateId", None),
        "history": ("orderId", None),
        "customers": ("customerId", None),
        "checks": ("joinId", None),
        "windows": ("windowKey", "windowStart"),
        "reviews": ("pk", None),
    }
    assert tables["events"].inputs["streamViewType"] == "NEW_IMAGE"
    assert tables["outbox"].inputs["streamViewType"] == "NEW_IMAGE"
    assert tables["idempotency"].inputs["ttl"] == {"attributeName": "expiration", "enabled": True}
    assert all(t.inputs["deletionProtectionEnabled"] for t in tables.values())
    assert not any(t.inputs["deletionProtectionEnabled"] for t in deploy("dev").of_type(TABLE))


def test_streams_feed_the_projection_the_snapshots_and_the_windows_inserts_only() -> None:
    system = deploy("dev")
    (events,) = [t for t in system.of_type(TABLE) if t.name == "saga-events-table"]
    stream_arn = events.outputs["streamArn"]
    assert system.consumers(stream_arn) == (
        "handlers.project_order_history.handler",
        "handlers.snapshot_aggregates.handler",
    )
    views = 0
    for mapping in system.of_type("aws:lambda/eventSourceMapping:EventSourceMapping"):
        if mapping.inputs["eventSourceArn"] == stream_arn:
            (criteria,) = mapping.inputs["filterCriteria"]["filters"]
            assert json.loads(criteria["pattern"]) == {"eventName": ["INSERT"]}
        if mapping.inputs.get("startingPosition") and "outbox" not in mapping.name:
            # Derived views ride out hours of throttling rather than leave a hole.
            views += 1
            assert mapping.inputs["maximumRetryAttempts"] == 200, mapping.name
            assert mapping.inputs["maximumRecordAgeInSeconds"] == 6 * 3600, mapping.name
            assert mapping.inputs["bisectBatchOnFunctionError"] is True, mapping.name
    assert views == 3


def _settings(system: System, short: str) -> dict[str, Any]:
    return system.function(short).inputs["environment"]["variables"]


def test_settings_come_from_the_stack_config() -> None:
    dev, prod = deploy("dev"), deploy("prod")
    assert _settings(dev, "process-payment")["PAYMENT_TRANSIENT_FAILURE_RATE"] == "0.2"
    assert _settings(dev, "ship-order-task")["SHIPPING_FAILURE_RATE"] == "0.1"
    assert _settings(dev, "ship-order-task")["FAILURE_SEED"] == "dev"
    # prod: the simulated providers fail only for their test customers (handler defaults).
    assert "PAYMENT_TRANSIENT_FAILURE_RATE" not in _settings(prod, "process-payment-task")
    assert _settings(dev, "window-aggregate")["WINDOW_SECONDS"] == "60"
    assert _settings(prod, "window-aggregate")["WINDOW_SECONDS"] == "300"
    assert _settings(prod, "snapshot-aggregates")["SNAPSHOT_EVERY"] == "50"
    for system in (dev, prod):
        for function in system.of_type(FUNCTION):
            env = function.inputs["environment"]["variables"]
            assert env["DEFAULT_CURRENCY"] == "USD", function.name
    assert dev.function("place-order").inputs["loggingConfig"]["applicationLogLevel"] == "DEBUG"
    warn = deploy("dev", logLevel="WARNING").function("place-order")
    assert warn.inputs["loggingConfig"]["applicationLogLevel"] == "WARN"


def test_reserved_concurrency_caps_the_workers_not_the_operator_tools() -> None:
    prod = deploy("prod")
    for function in prod.of_type(FUNCTION):
        reserved = function.inputs.get("reservedConcurrentExecutions")
        # Operator tools and the outbox sweeper (one scheduled run) reserve nothing.
        if function.name.startswith("saga-dlq-") or "-sweeper-" in function.name:
            assert reserved is None, function.name
        else:
            assert reserved == 20, function.name
    # The poller is throttled at the same cap, not the function.
    for mapping in deploy("prod", "both").of_type(
        "aws:lambda/eventSourceMapping:EventSourceMapping"
    ):
        if "scalingConfig" in mapping.inputs:
            assert mapping.inputs["scalingConfig"] == {"maximumConcurrency": 20}
    assert all(
        f.inputs.get("reservedConcurrentExecutions") is None
        for f in deploy("dev").of_type(FUNCTION)
    )


@pytest.mark.parametrize("stack", STACKS)
def test_every_alarm_notifies_the_alerts_topic(stack: str) -> None:
    system = deploy(stack, "both")
    topic = system.outputs["alertsTopicArn"]
    alarms = system.of_type(ALARM)
    assert len(alarms) > 100
    for alarm in alarms:
        assert alarm.inputs["alarmActions"] == [topic], alarm.name
        assert alarm.inputs["okActions"] == [topic], alarm.name
    subscriptions = system.of_type("aws:sns/topicSubscription:TopicSubscription")
    assert [s.inputs["endpoint"] for s in subscriptions] == (
        ["oncall@example.com"] if stack == "prod" else []
    )


def test_one_dlq_processor_per_work_queue_bound_to_its_dlq() -> None:
    system = deploy("dev", "both")
    queues = system.outputs["queues"]
    for name in ("reserve", "payments", "progress", "checks"):
        env = _settings(system, f"dlq-{name}")
        assert env["DLQ_URL"] == queues[name]["dlqUrl"]
        assert env["REDRIVE_QUEUE_URL"] == queues[name]["url"]
        assert env["EVENT_BUS_NAME"] == system.outputs["busName"]
    only = deploy("dev", "orchestration")
    assert {n for n in only.outputs["functions"] if n.startswith("dlq-")} == {"dlq-checks"}


def _queue_visibility(system: System) -> dict[str, Any]:
    return {q.name: q.inputs.get("visibilityTimeoutSeconds") for q in system.of_type(QUEUE)}


def test_work_queues_hide_a_batch_six_times_the_consumers_timeout() -> None:
    visibility = _queue_visibility(deploy("dev", "both"))
    for name in ("reserve", "payments", "progress", "checks"):
        assert visibility[f"saga-{name}-work-queue"] == 180


def test_the_choreography_rule_names_match_the_module() -> None:
    assert set(CHOREOGRAPHY_RULES) == set(CHOREOGRAPHY_ROUTES)
