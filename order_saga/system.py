"""The order-saga reference system: every component and handler wired into one program.

`OrderSaga` is what `__main__.py` declares for a stack, from its typed config
(`order_saga.config.OrderSagaConfig`). The picture is in README.md
("Architecture"); the decisions worth knowing:

Handlers -> resources (the key mechanism). Each function's environment and role come
from its handler module's `ACCESS` (read with `ast`, see `order_saga.wiring`):
every variable is bound to the component that provides it (`ORDERS_TABLE` -> the orders
table, `EVENT_BUS_NAME` -> the bus, ...), set to its name or URL, and granted exactly the
listed actions on exactly that resource. A variable the system cannot bind stops the
program before any resource is declared, naming the handler and the variable.

Saga modes (config `sagaMode`). `choreography`: rules route each saga event to the next
step. `orchestration`: a rule on OrderPlaced starts a Step Functions saga (reserve ->
pay -> ship, compensations in reverse order, `record_outcome` as the failure hook;
every step is idempotent, so a lost reply is retried, not compensated).
`both`: each order goes to exactly one of them, by the last hex digit of its orderId (a
uuid4: 0-7 choreography, 8-f orchestration), matched with EventBridge `suffix` patterns:
content-based and deterministic, and a redelivered or replayed OrderPlaced goes the same
way. The orchestration tasks write the same saga events to the outbox, so EVERY
choreography rule carries the choreography filter (built once, `order_filter`), not
only the entry rule: otherwise the rules would also drive the orchestrated orders.

Rule targets. SQS in front of a function where batching or backpressure matters:
`reserve` (stock of hot SKUs: a capped number of concurrent reservations, batches),
`progress` (saga_progress: fan-in of eight event types into one order record; batches
and a concurrency cap keep optimistic-concurrency conflicts low) and `join`
(aggregate_checks: its CompletionPendingError must come back after a visibility
timeout, not be retried at once) and `pay` (below). Everything else is a direct Lambda
target (low volume, one event at a time): EventBridge retries it and Lambda's
asynchronous invocation retries it, each with its own dead-letter queue.

Payments: a standard queue, no message group. The order that matters is per order, and
the payment record keeps it, not the queue: an order is charged once (its record goes
PENDING -> CHARGED / DECLINED conditionally, a redelivery finds the decision) and never
after its compensation (a VOID record refuses a late charge), whatever the arrival
order; one InventoryReserved per order is all the queue carries for it. Nothing orders a
customer's charges: the provider decides each from the order alone (no balance, no
limit across orders). A FIFO queue fed by EventBridge gets ONE static MessageGroupId per
target, so it could only order everything: one message that kept failing, or each
transient provider failure, held every other customer's payment for its visibility
timeout. In the standard queue a failing message is retried alone (partial batch
responses), then dead-lettered, and the others go on.

Internal steps trust only this account. Partner accounts (config `partnerAccountIds`,
`partnerOrganizationId`) may put on the order bus only the sources and detail-types
listed for them (`partnerSources`, `partnerDetailTypes`: never this system's own), and
every rule of the order bus matches only events put by this stack's account
(`own_account_only`). The steps do not trust an event's claims either: shipping needs
the order charged its total and reserved, compensations never undo a shipped order,
saga_progress records a charge or a shipment only as its step recorded it
(`saga.guards`).

The activity feed (Kinesis) is partitioned by `$.detail.customerId`: every event of the
contracts carries it (the contracts require it of producers), so each customer's events,
hence each order's, stay in order on one shard; the rule matches only events that have
it (an event archived before events carried it is not fed, rather than failed). An
input transformer gives it a compact event (detail-type, source, time, detail), which
window_aggregate reads.

Fork/join checks by events, not a Step Functions Parallel: the join result
(AllChecksComplete) is then an event on the bus (archived, replayable, forwardable to
partners), each check fails and retries alone with its own DLQ, and the join's exactly-
once completion (eventcraft.aggregation) is exercised; `aggregate_checks.task` with a
Parallel state would return the result inside one execution and publish nothing.

A local AWS emulator (config `awsEndpoint`): an explicit `aws.Provider` whose endpoints
all point at that URL (credentials and account lookups skipped, path-style S3) is
passed to every child through this component's `providers`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Literal

import pulumi
import pulumi_aws as aws

from contracts import REGISTRY, json_schemas, model_for
from domain.enrichment import high_value_pattern
from domain.orders import SAGA_EVENT_TYPES
from order_saga.catalogue import (
    CODE_DIR,
    DLQ_PROCESSOR_HANDLER,
    DLQ_PROCESSOR_TIMEOUT_SECONDS,
    HANDLER_LIBRARY,
    LAYER_CACHE_DIR,
    ORCHESTRATION_FUNCTIONS,
    RELAY_HANDLER,
    REQUIREMENTS_FILE,
    SWEEPER_HANDLER,
    SWEEPER_TIMEOUT_SECONDS,
    SystemFunction,
    function_specs,
)
from order_saga.config import NAMESPACE, OrderSagaConfig, SagaMode
from order_saga.wiring import (
    Binding,
    check_bindings,
    handler_module,
    read_access,
    restrict,
    wire,
)
from pulumi_eventcraft.alarms import Alerts, AlertsArgs, metric_alarm
from pulumi_eventcraft.config import ConfigError
from pulumi_eventcraft.event_bus import EventBus, EventBusArgs
from pulumi_eventcraft.event_rule import (
    EventBusTarget,
    EventRule,
    EventRuleArgs,
    InputTransformer,
    KinesisTarget,
    LambdaTarget,
    SqsTarget,
    StateMachineTarget,
)
from pulumi_eventcraft.event_source import (
    DynamoDbStreamSource,
    EventSourceMapping,
    EventSourceMappingArgs,
    KinesisSource,
    SqsSource,
    dynamodb_insert_only,
)
from pulumi_eventcraft.function import (
    MIN_UNRESERVED_CONCURRENCY,
    Function,
    FunctionArgs,
    RecursiveLoop,
    reservable_concurrency,
    scoped_name,
)
from pulumi_eventcraft.layer import DependencyLayer, DependencyLayerArgs
from pulumi_eventcraft.outbox_relay import OutboxRelay, OutboxRelayArgs
from pulumi_eventcraft.queue import (
    DeadLetterQueue,
    DeadLetterQueueArgs,
    Queue,
    QueueArgs,
    QueueSender,
)
from pulumi_eventcraft.renames import former_types
from pulumi_eventcraft.saga import SagaStep, function_arns, saga_definition
from pulumi_eventcraft.state_machine import ExpressDurationError, StateMachine, StateMachineArgs
from pulumi_eventcraft.stream import Stream, StreamArgs
from pulumi_eventcraft.table import (
    KeyAttribute,
    Table,
    TableArgs,
    event_store_table,
    idempotency_table,
    outbox_table,
    snapshot_table,
    state_table,
)

# The component package's type tokens -> the tokens they had when they lived in this
# project (module-qualified), which the deployed stacks' URNs still carry.
FORMER_TYPE_TOKENS: Final[Mapping[str, str]] = {
    f"eventcraft:index:{component}": f"order-saga:{module}:{component}"
    for module, component in (
        ("alarms", "Alerts"),
        ("event_bus", "EventBus"),
        ("event_rule", "EventRule"),
        ("event_source", "EventSourceMapping"),
        ("function", "Function"),
        ("layer", "DependencyLayer"),
        ("outbox_relay", "OutboxRelay"),
        ("queue", "DeadLetterQueue"),
        ("queue", "Queue"),
        ("state_machine", "StateMachine"),
        ("stream", "Stream"),
        ("table", "Table"),
    )
}

# Content-based routing of `both`: the last hex digit of the orderId (a uuid4).
CHOREOGRAPHY_DIGITS: Final = "01234567"
ORCHESTRATION_DIGITS: Final = "89abcdef"

# Produced event types that no rule of the system acts on: they are for the archive,
# partners (forwardDetailTypes) and downstream consumers. The observers (the order
# history and the activity feed) record them like every other event.
EXTERNAL_OUTPUTS: Final[frozenset[str]] = frozenset(
    {
        "OrderCompleted",  # the saga's end: for notifications, partners, the archive
        "OrderCancelled",  # idem
        "OrderEnriched",  # the enriched order, for downstream consumers (CRM, analytics)
        "HighValueOrderFlagged",  # the review queue's UI and the fraud team
        "AllChecksComplete",  # the join's result, for whoever approves orders
    }
)

# Rules by role. Observers record every event (history, feed) or hand events to
# another account; they never drive the order.
CHOREOGRAPHY_RULES: Final = ("reserve", "pay", "ship", "release", "refund", "progress")
ORCHESTRATION_RULES: Final = ("orchestrate",)
OBSERVER_RULES: Final = frozenset({"history", "activity", "forward"})

# Errors the saga tasks raise for a transient condition (their exception class names):
# the state machine retries them like the Lambda service's own faults.
CONFLICT_ERRORS: Final = (
    "ConcurrentUpdateError",
    "TransactionConflictError",
    "TransactionThrottledError",
)
PAYMENT_TRANSIENT_ERRORS: Final = ("PaymentProviderUnavailable", *CONFLICT_ERRORS)
# The views derived from streams (history read model, snapshots, activity windows) are
# idempotent and rebuildable: they ride out hours of throttling or an outage by retrying
# (bisect still isolates a poison record, which ends as a pointer after 6 hours) instead
# of giving a batch up after 5 tries, which leaves a hole only a rebuild fills.
DERIVED_VIEW_RETRY_ATTEMPTS: Final = 200
DERIVED_VIEW_RECORD_AGE_SECONDS: Final = 6 * 3600

# Lambda's log levels are WARN, Python's WARNING: the stack config uses Python's.
_FUNCTION_LOG_LEVEL: Final = {"DEBUG": "DEBUG", "INFO": "INFO", "WARNING": "WARN", "ERROR": "ERROR"}
# The services the program talks to, for the endpoints of a local emulator.
EMULATED_SERVICES: Final = (
    "cloudwatch",
    "dynamodb",
    "events",
    "iam",
    "kinesis",
    "kms",
    "lambda_",
    "logs",
    "s3",
    "schemas",
    "sfn",
    "sns",
    "sqs",
    "sts",
)
# S3 caps bucket_prefix at 37 characters (a unique suffix is appended).
MAX_BUCKET_PREFIX = 37
# Messages waiting in a report queue (rejected import lines, late events) need a person.
REPORT_QUEUE_RETENTION_SECONDS = 1_209_600


def order_filter(mode: SagaMode, saga: Literal["choreography", "orchestration"]) -> list[Any]:
    """The `detail.orderId` matcher sending an order to `saga` ([] = every order)."""
    if mode != "both":
        return []
    digits = CHOREOGRAPHY_DIGITS if saga == "choreography" else ORCHESTRATION_DIGITS
    return [{"suffix": digit} for digit in digits]


def saga_pattern(detail_types: Sequence[str], orders: Sequence[Any] = ()) -> dict[str, Any]:
    """Events of `detail_types` (from their producers' sources), of the orders `orders`
    selects (a `detail.orderId` matcher list; empty = every order)."""
    sources = sorted({model_for(t).SOURCE for t in detail_types})
    pattern: dict[str, Any] = {"source": sources, "detail-type": list(detail_types)}
    if orders:
        pattern["detail"] = {"orderId": list(orders)}
    return pattern


def _contract_types() -> list[str]:
    return list(REGISTRY)


@dataclass(frozen=True, kw_only=True)
class OrderSagaArgs:
    """Arguments of `OrderSaga`.

    config: the stack's validated config.
    code_dir: the Lambda code root (default `catalogue.CODE_DIR`, `<project>/functions`).
    layer: the dependency layer's args (default: `catalogue.REQUIREMENTS_FILE` and the
        handler library's wheel for the config's lambdaArchitecture, cached in
        `catalogue.LAYER_CACHE_DIR`).
    """

    config: OrderSagaConfig
    code_dir: Path = CODE_DIR
    layer: DependencyLayerArgs | None = None


class OrderSaga(pulumi.ComponentResource):
    """The order system (`order-saga:order_saga:OrderSaga`); see the module docstring.

    Attributes: `config`, `provider` (the emulator provider, or None), `alerts`, `bus`,
    `tables` (role -> Table), `bucket`, `activity_stream`, `layer`, `functions`
    (spec name -> Function, DLQ processors as `dlq-<queue>`), `rules` (short name ->
    EventRule; the S3 rule is `import`), `queues` (name -> Queue), `mappings` (name ->
    EventSourceMapping), `relay`, `state_machine` (or None), `dead_letter_queues`
    (output name -> (DeadLetterQueue, kind)), `outputs` (the stack outputs).
    """

    def __init__(
        self, name: str, args: OrderSagaArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        config = args.config
        self.config = config
        self.code_dir = Path(args.code_dir)
        self._name = name
        mode: SagaMode = config.saga_mode
        self.mode = mode
        self.specs = function_specs(mode)
        # Everything that can fail is checked before the first resource is declared.
        self._access = {spec.name: self._spec_access(spec) for spec in self.specs}
        self._access["dlq-processor"] = read_access(
            handler_module(DLQ_PROCESSOR_HANDLER), code_dir=self.code_dir
        )
        self._check_bindable()
        self._check_reserved_concurrency()
        self.bucket_prefix = _bucket_prefix(name)

        self.provider = _emulator_provider(name, config.aws_endpoint)
        if self.provider is not None:
            opts = pulumi.ResourceOptions.merge(
                opts, pulumi.ResourceOptions(providers={"aws": self.provider})
            )
        # The components were first deployed under this project's type tokens: the
        # aliases keep every deployed resource (tests/system/test_urns.py).
        opts = pulumi.ResourceOptions.merge(
            opts, pulumi.ResourceOptions(transformations=[former_types(FORMER_TYPE_TOKENS)])
        )
        super().__init__("order-saga:order_saga:OrderSaga", name, None, opts)
        self._child = pulumi.ResourceOptions(parent=self)

        self.functions: dict[str, Function] = {}
        self.rules: dict[str, EventRule] = {}
        self.queues: dict[str, Queue] = {}
        self.mappings: dict[str, EventSourceMapping] = {}
        self.dead_letter_queues: dict[str, tuple[DeadLetterQueue, str]] = {}
        self.state_machine: StateMachine | None = None

        self.alerts = Alerts(f"{name}-alerts", AlertsArgs(email=config.alert_email), self._child)
        self._actions: list[pulumi.Input[str]] = [self.alerts.topic_arn]
        self._declare_storage()
        self.layer = DependencyLayer(
            f"{name}-deps",
            args.layer
            or DependencyLayerArgs(
                requirements_file=REQUIREMENTS_FILE,
                packages=(HANDLER_LIBRARY,),
                architecture=config.lambda_architecture,
                cache_dir=LAYER_CACHE_DIR,
            ),
            self._child,
        )
        self._bindings = self._shared_bindings()
        for spec in self.specs:
            self.functions[spec.name] = self._function(spec)
        self._declare_relay()
        if mode in ("choreography", "both"):
            self._declare_choreography()
        if mode in ("orchestration", "both"):
            try:
                self._declare_orchestration()
            except ExpressDurationError as exc:
                raise ConfigError(
                    f"Invalid stack config:\n  {NAMESPACE}:stateMachineType = 'EXPRESS': {exc}"
                ) from None
        self._declare_side_flows()
        self._declare_dlq_processors()
        self.outputs = self._outputs()
        self.register_outputs({})

    # ------------------------------------------------------------------ checks

    def reserved_functions(self) -> int:
        """How many functions reserve `reservedConcurrency`: the catalogue's reserved
        ones and the outbox relay (not the DLQ tools, not the sweeper)."""
        return sum(1 for spec in self.specs if spec.reserved) + 1

    def _check_reserved_concurrency(self) -> None:
        """Every reservation fits in the account's quota (accountConcurrencyLimit) minus
        what Lambda keeps unreserved; else `pulumi up` fails halfway."""
        per_function = self.config.reserved_concurrency
        if per_function is None:
            return
        count = self.reserved_functions()
        limit = self.config.account_concurrency_limit
        available = reservable_concurrency(limit)
        if per_function * count <= available:
            return
        raise ConfigError(
            "Invalid stack config:\n  "
            f"{NAMESPACE}:reservedConcurrency = {per_function}: {count} functions reserve "
            f"{per_function} each, {per_function * count} in all, but "
            f"{NAMESPACE}:accountConcurrencyLimit = {limit} leaves {available} to reserve "
            f"(Lambda keeps {MIN_UNRESERVED_CONCURRENCY} of the account's concurrency "
            f"unreserved): reserve at most {available // count} per function, or raise the "
            "account's Lambda concurrency quota (Service Quotas) and accountConcurrencyLimit"
        )

    def _spec_access(self, spec: SystemFunction) -> dict[str, frozenset[str]]:
        access = read_access(handler_module(spec.handler), code_dir=self.code_dir)
        if spec.access is not None:
            access = restrict(access, spec.access, handler=spec.handler)
        return access

    def _check_bindable(self) -> None:
        """Every variable of every handler has a binding (the same check `wire` makes
        per function, all at once and before any resource exists)."""
        placeholder = Binding("table", "", "", "")
        for spec in self.specs:
            provided = dict.fromkeys(SHARED_BINDINGS, placeholder)
            check_bindings(spec.handler, self._access[spec.name], provided)
        provided = dict.fromkeys(SHARED_BINDINGS | DLQ_PROCESSOR_BINDINGS, placeholder)
        check_bindings(DLQ_PROCESSOR_HANDLER, self._access["dlq-processor"], provided)

    # ------------------------------------------------------------------ storage

    def _declare_storage(self) -> None:
        config, name = self.config, self._name
        protect = config.deletion_protection
        layouts: dict[str, TableArgs] = {
            # pk = order#<id> | request#<customer>#<request id> (place_order, saga_progress)
            # | import#<sha256 of bucket/key/etag> (import_orders' checkpoints)
            "orders": state_table("pk", deletion_protection=protect),
            # pk = sku#<sku> | reservation#<order id> (reserve/release_inventory)
            "inventory": state_table("pk", deletion_protection=protect),
            # pk = payment#<order id> (process_payment, refund_payment)
            "payments": state_table("pk", deletion_protection=protect),
            # pk = shipment#<order id> (ship_order)
            "shipments": state_table("pk", deletion_protection=protect),
            "outbox": outbox_table(deletion_protection=protect),
            "idempotency": idempotency_table(deletion_protection=protect),
            # aggregateId + version, NEW_IMAGE stream to the projection and snapshots
            "events": event_store_table(deletion_protection=protect),
            "snapshots": snapshot_table(deletion_protection=protect),
            # the read model: one row per orderId
            "history": state_table("orderId", deletion_protection=protect),
            "customers": state_table("customerId", deletion_protection=protect),
            # the fork/join's joins (eventcraft.aggregation): joinId, TTL expiresAt
            "checks": state_table("joinId", ttl_attribute="expiresAt", deletion_protection=protect),
            # event-time windows (eventcraft.windows): windowKey + windowStart (ms)
            "windows": TableArgs(
                hash_key=KeyAttribute("windowKey", "S"),
                range_key=KeyAttribute("windowStart", "N"),
                ttl_attribute="expiresAt",
                deletion_protection=protect,
            ),
            # pk = review#<order id> (high_value_review)
            "reviews": state_table("pk", deletion_protection=protect),
        }
        self.tables = {
            role: Table(f"{name}-{role}", table_args, self._child)
            for role, table_args in layouts.items()
        }

        self.bus = EventBus(
            f"{name}-orders",
            EventBusArgs(
                description=f"{name}-orders: events of the order saga",
                archive_retention_days=config.archive_retention_days,
                schemas=json_schemas(),
                partner_account_ids=config.partner_account_ids,
                organization_id=config.partner_organization_id,
                # Partners put only their own events: none that a rule acts on.
                allowed_sources=config.partner_sources,
                allowed_detail_types=config.partner_detail_types,
            ),
            self._child,
        )

        self.bucket = self._import_bucket()

        # Report queues: what an import or the windows refused, for a person to read
        # (dlq_processor inspects them). Alarmed at the first message, like a DLQ.
        self.queues["rejectedLines"] = self._report_queue("rejected-lines")
        self.queues["lateEvents"] = self._report_queue("late-events")

        shards = config.activity_stream_shards
        self.activity_stream = Stream(
            f"{name}-activity",
            StreamArgs(
                mode="ON_DEMAND" if shards is None else "PROVISIONED",
                shard_count=shards,
                alarm_actions=self._actions,
            ),
            self._child,
        )

    def _import_bucket(self) -> aws.s3.Bucket:
        """The bulk-import bucket: encrypted, private, versioned, events to EventBridge."""
        name, child = self._name, self._child
        bucket = aws.s3.Bucket(
            f"{name}-imports",
            # A globally unique name from this prefix; the S3 rule matches the prefix.
            bucket_prefix=self.bucket_prefix,
            # Files are inputs, not records: a stack without deletion protection may go.
            force_destroy=not self.config.deletion_protection,
            opts=child,
        )
        aws.s3.BucketServerSideEncryptionConfiguration(
            f"{name}-imports-encryption",
            bucket=bucket.id,
            rules=[
                aws.s3.BucketServerSideEncryptionConfigurationRuleArgs(
                    # SSE-S3: the import function needs no KMS grant to read the files.
                    apply_server_side_encryption_by_default=aws.s3.BucketServerSideEncryptionConfigurationRuleApplyServerSideEncryptionByDefaultArgs(
                        sse_algorithm="AES256"
                    )
                )
            ],
            opts=child,
        )
        aws.s3.BucketPublicAccessBlock(
            f"{name}-imports-public-access",
            bucket=bucket.id,
            block_public_acls=True,
            block_public_policy=True,
            ignore_public_acls=True,
            restrict_public_buckets=True,
            opts=child,
        )
        aws.s3.BucketVersioning(
            f"{name}-imports-versioning",
            bucket=bucket.id,
            # An overwritten file keeps its earlier version (the import reads by ETag).
            versioning_configuration=aws.s3.BucketVersioningVersioningConfigurationArgs(
                status="Enabled"
            ),
            opts=child,
        )
        aws.s3.BucketNotification(
            f"{name}-imports-notifications", bucket=bucket.id, eventbridge=True, opts=child
        )
        return bucket

    def _report_queue(self, short: str) -> Queue:
        name = f"{self._name}-{short}"
        queue = Queue(
            name,
            QueueArgs(
                # dlq_processor hides what it reads for 120 s while it inspects.
                visibility_timeout_seconds=120,
                message_retention_seconds=REPORT_QUEUE_RETENTION_SECONDS,
                alarm_actions=self._actions,
            ),
            self._child,
        )
        metric_alarm(
            f"{name}-messages-alarm",
            namespace="AWS/SQS",
            metric_name="ApproximateNumberOfMessagesVisible",
            dimensions={"QueueName": queue.name},
            threshold=self.config.dlq_alarm_threshold,
            statistic="Maximum",
            alarm_actions=self._actions,
            description=f"{short}: messages are waiting for a person (inspect with dlq_processor)",
            parent=self,
        )
        return queue

    def _shared_bindings(self) -> dict[str, Binding]:
        t = self.tables
        bindings = {variable: _table_binding(t[role]) for variable, role in TABLE_BINDINGS.items()}
        bindings["EVENT_BUS_NAME"] = Binding(
            "bus", self.bus.name, self.bus.arn, self.bus.pulumi_resource_name
        )
        bindings["IMPORT_BUCKET"] = Binding(
            "bucket", self.bucket.bucket, self.bucket.arn, f"{self._name}-imports"
        )
        for variable, queue in (
            ("REJECTED_LINES_QUEUE_URL", self.queues["rejectedLines"]),
            ("LATE_EVENTS_QUEUE_URL", self.queues["lateEvents"]),
        ):
            bindings[variable] = _queue_binding(queue)
        assert set(bindings) == set(SHARED_BINDINGS)
        return bindings

    # ---------------------------------------------------------------- functions

    def _settings(self, spec: SystemFunction) -> dict[str, pulumi.Input[str]]:
        """The non-resource settings of a function (from the stack config)."""
        config = self.config
        env: dict[str, pulumi.Input[str]] = {"DEFAULT_CURRENCY": config.default_currency}
        optional: dict[str, object | None] = {}
        if "payments" in spec.settings:
            optional |= {
                "PAYMENT_DECLINE_CUSTOMER_PREFIX": config.payment_decline_customer_prefix,
                "PAYMENT_TRANSIENT_FAILURE_RATE": config.payment_transient_failure_rate,
                "FAILURE_SEED": config.failure_seed,
            }
        if "shipping" in spec.settings:
            optional |= {
                "SHIPPING_FAIL_CUSTOMER_PREFIX": config.shipping_fail_customer_prefix,
                "SHIPPING_FAILURE_RATE": config.shipping_failure_rate,
                "FAILURE_SEED": config.failure_seed,
            }
        if "review" in spec.settings:
            # The handler checks the same threshold the routing rule matches.
            optional["HIGH_VALUE_THRESHOLD_CENTS"] = config.high_value_threshold_cents
        if "history" in spec.settings:
            optional["SNAPSHOT_EVERY"] = config.snapshot_every
        if "windows" in spec.settings:
            optional |= {
                "WINDOW_SECONDS": config.window_seconds,
                "ALLOWED_LATENESS_SECONDS": config.allowed_lateness_seconds,
            }
        env |= {key: str(value) for key, value in optional.items() if value is not None}
        return env

    def _function_args(
        self,
        *,
        handler: str,
        timeout_seconds: int,
        memory_mb: int = 256,
        environment: Mapping[str, pulumi.Input[str]],
        reserved: bool = True,
        async_on_failure: DeadLetterQueue | bool = False,
        recursive_loop: RecursiveLoop = "Terminate",
    ) -> FunctionArgs:
        config = self.config
        return FunctionArgs(
            handler=handler,
            timeout_seconds=timeout_seconds,
            memory_mb=memory_mb,
            code_dir=self.code_dir,
            architecture=config.lambda_architecture,
            environment=dict(environment),
            reserved_concurrency=config.reserved_concurrency if reserved else None,
            log_retention_days=config.log_retention_days,
            log_level=_FUNCTION_LOG_LEVEL[config.log_level],
            layer=self.layer,
            async_on_failure=async_on_failure,
            recursive_loop=recursive_loop,
            alarm_actions=self._actions,
        )

    def _function(
        self,
        spec: SystemFunction,
        *,
        name: str | None = None,
        extra_bindings: Mapping[str, Binding] | None = None,
        access_key: str | None = None,
    ) -> Function:
        """A Function whose environment and grants come from its handler's ACCESS."""
        component = f"{self._name}-{name or spec.name}"
        access = self._access[access_key or spec.name]
        wiring = wire(spec.handler, access, {**self._bindings, **(extra_bindings or {})})
        on_failure: DeadLetterQueue | bool = False
        if spec.async_target:
            on_failure = self._dlq(
                f"{component}-async-dlq", f"{name or spec.name}-async", "lambda-destination"
            )
        function = Function(
            component,
            self._function_args(
                handler=spec.handler,
                timeout_seconds=spec.timeout_seconds,
                memory_mb=spec.memory_mb,
                environment={**self._settings(spec), **wiring.environment},
                reserved=spec.reserved,
                async_on_failure=on_failure,
                # A handler that may invoke its own function continues itself on purpose.
                recursive_loop="Allow" if wiring.own_actions else "Terminate",
            ),
            self._child,
        )
        for grant, statements in {**wiring.grants, **wiring.own_grants(function.arn)}.items():
            function.grant(grant, statements)
        return function

    def _dlq(
        self, component: str, output: str, kind: str, senders: Sequence[QueueSender] = ()
    ) -> DeadLetterQueue:
        """A standard DLQ alarmed at the stack's dlqAlarmThreshold, listed in outputs."""
        dlq = DeadLetterQueue(
            component,
            DeadLetterQueueArgs(
                senders=senders,
                alarm_threshold=self.config.dlq_alarm_threshold,
                alarm_actions=self._actions,
            ),
            self._child,
        )
        self.dead_letter_queues[output] = (dlq, kind)
        return dlq

    # --------------------------------------------------------------- rules, hops

    def _rule(
        self,
        short: str,
        pattern: Mapping[str, Any],
        description: str,
        *,
        bus: EventBus | str | None = None,
    ) -> EventRule:
        rule = EventRule(
            f"{self._name}-{short}",
            EventRuleArgs(
                bus=bus if bus is not None else self.bus,
                pattern=pattern,
                description=description,
                # Every rule of the order bus drives or records this system's own steps:
                # only events this account put (partners may put to the bus).
                own_account_only=bus is None,
                alarm_actions=self._actions,
            ),
            self._child,
        )
        self.rules[short] = rule
        return rule

    def _target_dlq(self, short: str, rule: EventRule, target: str) -> DeadLetterQueue:
        return self._dlq(
            f"{self._name}-{short}-{target}-dlq",
            f"{short}-{target}",
            "rule-target",
            senders=[rule.as_sender()],
        )

    def _to_function(
        self,
        short: str,
        function_name: str,
        *,
        target: str = "lambda",
        input_transformer: InputTransformer | None = None,
    ) -> None:
        """Deliver the events of rule `short` to a function (asynchronous invoke)."""
        rule = self.rules[short]
        function = self.functions[function_name]
        rule.add_target(
            LambdaTarget.of(
                function,
                dead_letter_queue=self._target_dlq(short, rule, target),
                input_transformer=input_transformer,
            ),
            name=target,
        )

    def _through_queue(
        self,
        queue_name: str,
        rule_names: Sequence[str],
        function_name: str,
    ) -> Queue:
        """Rules -> one work queue -> a function (batches, partial batch failures)."""
        function = self.functions[function_name]
        rules = [self.rules[r] for r in rule_names]
        queue = Queue(
            f"{self._name}-{queue_name}-work",
            QueueArgs(
                # The event source mapping requires 6 x the function timeout.
                visibility_timeout_seconds=6 * function.timeout_seconds,
                senders=[rule.as_sender() for rule in rules],
                alarm_actions=self._actions,
            ),
            self._child,
        )
        self.queues[queue_name] = queue
        for short, rule in zip(rule_names, rules, strict=True):
            rule.add_target(
                SqsTarget(
                    queue=queue,
                    dead_letter_queue=self._target_dlq(short, rule, "sqs"),
                ),
                name="sqs",
            )
        # The consumer dead-letters what will not succeed itself, with the error
        # (eventcraft.batch dead_letter): SQS's own redrive records none.
        function.grant(f"dead-letter-{queue_name}", queue.dlq.send_statements())
        reserved = function.reserved_concurrency
        self._mapping(
            f"{queue_name}-consumer",
            function,
            SqsSource(
                queue=queue,
                batch_size=10,  # a failed record goes back alone (partial batch response)
                # Throttle at the poller, not the function: a throttled batch would
                # count as a receive and move toward the DLQ.
                maximum_concurrency=reserved if reserved is not None and reserved >= 2 else None,
            ),
        )
        return queue

    def _mapping(
        self,
        short: str,
        function: Function,
        source: SqsSource | DynamoDbStreamSource | KinesisSource,
    ) -> EventSourceMapping:
        mapping = EventSourceMapping(
            f"{self._name}-{short}",
            EventSourceMappingArgs(function=function, source=source, alarm_actions=self._actions),
            self._child,
        )
        self.mappings[short] = mapping
        return mapping

    def _stream_failures(self, short: str) -> DeadLetterQueue:
        return self._dlq(f"{self._name}-{short}-failures", short, "stream-failure")

    # ---------------------------------------------------------------- the flows

    def _declare_relay(self) -> None:
        name = f"{self._name}-outbox-relay"
        self.relay = OutboxRelay(
            name,
            OutboxRelayArgs(
                table=self.tables["outbox"],
                bus=self.bus,
                function=self._function_args(
                    handler=RELAY_HANDLER,
                    timeout_seconds=60,
                    environment={"DEFAULT_CURRENCY": self.config.default_currency},
                ),
                # Publishes what the relay gave up on; a scheduled run, not capacity.
                sweeper=self._function_args(
                    handler=SWEEPER_HANDLER,
                    timeout_seconds=SWEEPER_TIMEOUT_SECONDS,
                    environment={"DEFAULT_CURRENCY": self.config.default_currency},
                    reserved=False,
                ),
                dead_letter_queue=self._stream_failures("outbox-relay"),
                alarm_actions=self._actions,
            ),
            self._child,
        )
        assert self.relay.sweep_rule is not None
        sweep_dlq = self.relay.sweep_rule.dead_letter_queues["lambda"]
        self.dead_letter_queues["outbox-sweep-lambda"] = (sweep_dlq, "rule-target")

    def _declare_choreography(self) -> None:
        orders = order_filter(self.mode, "choreography")
        routes: tuple[tuple[str, tuple[str, ...], str], ...] = (
            ("reserve", ("OrderPlaced",), "reserve the stock of a placed order"),
            ("pay", ("InventoryReserved",), "charge an order once its stock is reserved"),
            ("ship", ("PaymentProcessed",), "ship a paid order"),
            ("release", ("PaymentFailed", "ShippingFailed"), "compensate: release the stock"),
            ("refund", ("ShippingFailed",), "compensate: refund the payment"),
            (
                "progress",
                # Exactly the events saga_progress folds into an order's saga state.
                SAGA_EVENT_TYPES,
                "record each saga event in the order's saga state",
            ),
        )
        for short, types, what in routes:
            self._rule(short, saga_pattern(types, orders), f"Choreography: {what}")
        self._through_queue("reserve", ["reserve"], "reserve-inventory")
        # A standard queue: each message is retried alone (see the module docstring).
        self._through_queue("payments", ["pay"], "process-payment")
        self._to_function("ship", "ship-order")
        self._to_function("release", "release-inventory")
        self._to_function("refund", "refund-payment")
        self._through_queue("progress", ["progress"], "saga-progress")

    def _declare_orchestration(self) -> None:
        f = self.functions
        steps = [
            # Every step finds what an earlier attempt decided (its conditional record): a
            # lost reply is retried, not compensated (idempotent).
            SagaStep(
                name="reserve",
                task=f["reserve-inventory-task"].arn,
                compensation=f["release-inventory-task"].arn,
                transient_errors=CONFLICT_ERRORS,
                idempotent=True,
            ),
            SagaStep(
                name="pay",
                task=f["process-payment-task"].arn,
                compensation=f["refund-payment-task"].arn,
                transient_errors=PAYMENT_TRANSIENT_ERRORS,
                idempotent=True,
            ),
            # Nothing undoes a shipment: a failed one undoes the payment and the stock.
            SagaStep(
                name="ship",
                task=f["ship-order-task"].arn,
                transient_errors=CONFLICT_ERRORS,
                idempotent=True,
            ),
        ]
        hook = f["record-outcome"].arn
        self.state_machine = StateMachine(
            f"{self._name}-orchestrator",
            StateMachineArgs(
                definition=saga_definition(
                    steps,
                    comment=(
                        "Order saga: reserve -> pay -> ship; a failure undoes the step and "
                        "the completed ones in reverse order, then records the outcome"
                    ),
                    on_failure=hook,
                ),
                task_function_arns=function_arns(steps, on_failure=hook),
                type=self.config.state_machine_type,
                # Each task runs at most its function's timeout (the EXPRESS check).
                max_task_seconds=max(s.timeout_seconds for s in ORCHESTRATION_FUNCTIONS),
                log_level="ALL" if self.config.log_level == "DEBUG" else "ERROR",
                log_retention_days=self.config.log_retention_days,
                alarm_actions=self._actions,
            ),
            self._child,
        )
        rule = self._rule(
            "orchestrate",
            saga_pattern(("OrderPlaced",), order_filter(self.mode, "orchestration")),
            "Orchestration: start the order's saga execution",
        )
        rule.add_target(
            StateMachineTarget(
                state_machine_arn=self.state_machine.arn,
                dead_letter_queue=self._target_dlq("orchestrate", rule, "sfn"),
            ),
            name="sfn",
        )

    def _declare_side_flows(self) -> None:
        config = self.config
        high_value = high_value_pattern(config.high_value_threshold_cents)
        self._rule("enrich", saga_pattern(("OrderPlaced",)), "Enrich each placed order")
        self._to_function("enrich", "enrich-order")
        self._rule(
            "high-value",
            high_value,
            f"Orders over {config.high_value_threshold} to review (totalCents > "
            f"{config.high_value_threshold_cents})",
        )
        self._to_function("high-value", "high-value-review")

        # Fork/join by events: three checks of each placed order, then the join.
        self._rule("checks", saga_pattern(("OrderPlaced",)), "Fork: check each placed order")
        for target, function in (
            ("inventory", "check-inventory"),
            ("credit", "check-credit"),
            ("shippingQuote", "check-shipping-quote"),
        ):
            self._to_function("checks", function, target=target)
        self._rule("join", saga_pattern(("CheckCompleted",)), "Join: collect the checks' results")
        self._through_queue("checks", ["join"], "aggregate-checks")

        # The event-sourced order history: every event of the contracts, by order.
        types = _contract_types()
        self._rule("history", saga_pattern(types), "Append every order event to its history")
        self._to_function("history", "record-history")
        for short, function in (
            ("history-projection", "project-order-history"),
            ("history-snapshots", "snapshot-aggregates"),
        ):
            self._mapping(
                short,
                self.functions[function],
                DynamoDbStreamSource(
                    stream=self.tables["events"],
                    # Appends only: the event store never updates or deletes an event.
                    filter_patterns=[dynamodb_insert_only()],
                    on_failure=self._stream_failures(short),
                    maximum_retry_attempts=DERIVED_VIEW_RETRY_ATTEMPTS,
                    maximum_record_age_seconds=DERIVED_VIEW_RECORD_AGE_SECONDS,
                ),
            )

        # The activity feed: every order event, compact, by customer, then windowed.
        self._rule(
            "activity",
            {
                "source": [{"prefix": "order-saga."}],
                "detail": {"orderId": [{"exists": True}], "customerId": [{"exists": True}]},
            },
            "Every order event to the activity feed (Kinesis, by customer)",
        )
        activity = self.rules["activity"]
        activity.add_target(
            KinesisTarget(
                stream_arn=self.activity_stream.arn,
                partition_key_path="$.detail.customerId",
                input_transformer=InputTransformer(
                    paths={
                        "detailType": "$.detail-type",
                        "source": "$.source",
                        "time": "$.time",
                        "detail": "$.detail",
                    },
                    template=(
                        '{"detail-type": "<detailType>", "source": "<source>", '
                        '"time": "<time>", "detail": <detail>}'
                    ),
                ),
                dead_letter_queue=self._target_dlq("activity", activity, "kinesis"),
            ),
            name="kinesis",
        )
        self._mapping(
            "activity-windows",
            self.functions["window-aggregate"],
            KinesisSource(
                stream=self.activity_stream,
                maximum_batching_window_seconds=1,
                on_failure=self._stream_failures("activity-windows"),
                maximum_retry_attempts=DERIVED_VIEW_RETRY_ATTEMPTS,
                maximum_record_age_seconds=DERIVED_VIEW_RECORD_AGE_SECONDS,
            ),
        )

        # System events: S3 sends them to the DEFAULT bus, so the import rule lives there.
        self._rule(
            "import",
            {
                "source": ["aws.s3"],
                "detail-type": ["Object Created"],
                "detail": {"bucket": {"name": [{"prefix": self.bucket_prefix}]}},
            },
            "Bulk order files uploaded to the import bucket",
            bus="default",
        )
        self._to_function("import", "import-orders")

        if config.forward_to_bus_arn is not None:
            forward = self._rule(
                "forward",
                saga_pattern(config.forward_detail_types),
                f"Forward {', '.join(config.forward_detail_types)} to a partner bus",
            )
            forward.add_target(
                EventBusTarget(
                    bus_arn=config.forward_to_bus_arn,
                    dead_letter_queue=self._target_dlq("forward", forward, "bus"),
                ),
                name="bus",
            )

    def _declare_dlq_processors(self) -> None:
        """One DLQ tool per work queue: inspect its DLQ, redrive to the queue or the bus."""
        spec = SystemFunction(
            name="dlq-processor",
            handler=DLQ_PROCESSOR_HANDLER,
            timeout_seconds=DLQ_PROCESSOR_TIMEOUT_SECONDS,
            reserved=False,
        )
        for queue_name in ("reserve", "payments", "progress", "checks"):
            queue = self.queues.get(queue_name)
            if queue is None:
                continue
            name = f"dlq-{queue_name}"
            self.functions[name] = self._function(
                spec,
                name=name,
                access_key="dlq-processor",
                extra_bindings={
                    "DLQ_URL": _queue_binding(queue.dlq, f"{queue.pulumi_resource_name}-dlq"),
                    "REDRIVE_QUEUE_URL": _queue_binding(queue),
                },
            )

    # ------------------------------------------------------------------ outputs

    def _outputs(self) -> dict[str, Any]:
        """What an operator (and `python -m ops`) needs, keyed as `ops.outputs` reads it."""
        archive = self.bus.archive
        outputs: dict[str, Any] = {
            "sagaMode": self.mode,
            "busName": self.bus.name,
            "busArn": self.bus.arn,
            "archiveName": archive.name if archive is not None else None,
            "archiveArn": archive.arn if archive is not None else None,
            "tables": {role: table.name for role, table in self.tables.items()},
            "queues": {
                name: {"url": q.url, "arn": q.arn, "dlqUrl": q.dlq.url, "dlqArn": q.dlq.arn}
                for name, q in self.queues.items()
            },
            "dlqs": {
                name: {"url": dlq.url, "arn": dlq.arn, "kind": kind}
                for name, (dlq, kind) in sorted(self.dead_letter_queues.items())
            },
            "functions": {
                **{name: fn.name for name, fn in self.functions.items()},
                "outbox-relay": self.relay.function.name,
                **({"outbox-sweeper": self.relay.sweeper.name} if self.relay.sweeper else {}),
            },
            "bucket": self.bucket.bucket,
            "stream": self.activity_stream.name,
            "alertsTopicArn": self.alerts.topic_arn,
            "highValueThresholdCents": self.config.high_value_threshold_cents,
        }
        if self.state_machine is not None:
            outputs["stateMachineArn"] = self.state_machine.arn
        return outputs


# ----------------------------------------------------------------------- bindings

# Environment variable -> the table (by role) it names.
TABLE_BINDINGS: Final[Mapping[str, str]] = {
    "ORDERS_TABLE": "orders",
    "INVENTORY_TABLE": "inventory",
    "PAYMENTS_TABLE": "payments",
    "SHIPMENTS_TABLE": "shipments",
    "OUTBOX_TABLE": "outbox",
    "IDEMPOTENCY_TABLE": "idempotency",
    "EVENTS_TABLE": "events",
    "SNAPSHOTS_TABLE": "snapshots",
    "HISTORY_TABLE": "history",
    "CUSTOMERS_TABLE": "customers",
    "CHECKS_TABLE": "checks",
    "WINDOWS_TABLE": "windows",
    "REVIEWS_TABLE": "reviews",
}
SHARED_BINDINGS: Final = frozenset(
    {
        *TABLE_BINDINGS,
        "EVENT_BUS_NAME",
        "IMPORT_BUCKET",
        "REJECTED_LINES_QUEUE_URL",
        "LATE_EVENTS_QUEUE_URL",
    }
)
# Bound per DLQ processor: the DLQ it works on and the queue that fed it.
DLQ_PROCESSOR_BINDINGS: Final = frozenset({"DLQ_URL", "REDRIVE_QUEUE_URL"})


def _table_binding(table: Table) -> Binding:
    index = (
        table.arn.apply(lambda arn: f"{arn}/index/*")
        if table.args.global_secondary_indexes
        else None
    )
    return Binding("table", table.name, table.arn, table.pulumi_resource_name, index)


def _queue_binding(queue: Queue | DeadLetterQueue, label: str | None = None) -> Binding:
    return Binding("queue", queue.url, queue.arn, label or queue.pulumi_resource_name)


def _bucket_prefix(name: str) -> str:
    """`<project>-<stack>-<name>-imports-`, lowercase (S3 bucket names are)."""
    prefix = re.sub(r"[^a-z0-9-]", "-", scoped_name(f"{name}-imports", max_length=200).lower())
    prefix = f"{prefix}-"
    if len(prefix) > MAX_BUCKET_PREFIX:
        raise ValueError(
            f"the import bucket's prefix {prefix!r} is longer than S3's {MAX_BUCKET_PREFIX} "
            "characters: use a shorter project, stack or system name"
        )
    return prefix


def _emulator_provider(name: str, endpoint: str | None) -> aws.Provider | None:
    """An AWS provider sending every call of the program to `endpoint` (None: none)."""
    if endpoint is None:
        return None
    url = endpoint.rstrip("/")
    return aws.Provider(
        f"{name}-emulator",
        region=aws.config.region or "us-east-1",
        endpoints=[aws.ProviderEndpointArgs(**dict.fromkeys(EMULATED_SERVICES, url))],
        # An emulator has no STS to validate keys against, no account to look up and
        # no instance metadata; S3 on one host needs path-style addressing.
        skip_credentials_validation=True,
        skip_requesting_account_id=True,
        skip_metadata_api_check=True,
        s3_use_path_style=True,
    )
