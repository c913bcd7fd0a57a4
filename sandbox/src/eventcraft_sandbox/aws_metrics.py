"""The metrics AWS publishes, with their dimensions, for the namespaces a CloudWatch
alarm of this project's components may watch: what the sandbox checks alarms against.

CloudWatch's PutMetricAlarm accepts any namespace, metric name and dimensions (so
does moto): an alarm on `ApproximateNumberOfMessagesVisble`, or on `Errors` of
AWS/Lambda with a `QueueName` dimension, is created and never fires, because no data
ever arrives for a metric AWS does not publish. `metric_problem` says why a
(namespace, metric, dimension names) triple is such a metric; the sandbox's
MetricAlarm deployer refuses the alarm with it (`deployers.cloudwatch`).

The table (`NAMESPACES`) is AWS's documentation of each namespace, at the `source`
URL given for it: every metric listed there, each with the dimension sets AWS
publishes it with (a set is the exact combination of dimension names an alarm must
give; the empty set is the metric across the whole account or Region). A namespace
outside the table (a custom one, or an AWS one no component alarms on) is not
checked. Only dimension names are checked, not their values.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Final

__all__ = ["NAMESPACES", "Namespace", "metric_problem"]

DimensionSet = frozenset[str]


@dataclass(frozen=True)
class Namespace:
    """One AWS namespace: the page that documents it, and its metrics (name -> the
    dimension sets AWS publishes it with)."""

    source: str
    metrics: Mapping[str, tuple[DimensionSet, ...]]


def _sets(*sets: str) -> tuple[DimensionSet, ...]:
    """Dimension sets written as "A,B" ("" for no dimension)."""
    return tuple(frozenset(filter(None, s.split(","))) for s in sets)


def _each(names: str, sets: tuple[DimensionSet, ...]) -> dict[str, tuple[DimensionSet, ...]]:
    return dict.fromkeys(names.split(), sets)


# --------------------------------------------------------------------------- AWS/SQS
# "The only dimension that Amazon SQS sends to CloudWatch is QueueName."
_SQS = Namespace(
    "https://docs.aws.amazon.com/AWSSimpleQueueService/latest/SQSDeveloperGuide/"
    "sqs-available-cloudwatch-metrics.html",
    _each(
        "ApproximateAgeOfOldestMessage ApproximateNumberOfGroupsWithInflightMessages "
        "ApproximateNumberOfMessagesDelayed ApproximateNumberOfMessagesNotVisible "
        "ApproximateNumberOfMessagesVisible NumberOfDeduplicatedSentMessages "
        "NumberOfEmptyReceives NumberOfMessagesDeleted NumberOfMessagesReceived "
        "NumberOfMessagesSent SentMessageSize",
        _sets("QueueName"),
    ),
)

# ------------------------------------------------------------------------ AWS/Lambda
# Function metrics: across all functions (no dimension), by FunctionName, by Resource
# (a version or alias, with its FunctionName) and by ExecutedVersion (with both).
_FUNCTION = _sets(
    "", "FunctionName", "FunctionName,Resource", "FunctionName,Resource,ExecutedVersion"
)
_LAMBDA = Namespace(
    "https://docs.aws.amazon.com/lambda/latest/dg/monitoring-metrics-types.html",
    {
        **_each(
            # invocation metrics
            "Invocations Errors DeadLetterErrors DestinationDeliveryFailures Throttles "
            "OversizedRecordCount ProvisionedConcurrencyInvocations "
            "ProvisionedConcurrencySpilloverInvocations RecursiveInvocationsDropped "
            # deployment, performance metrics
            "SignatureValidationErrors Duration PostRuntimeExtensionsDuration IteratorAge "
            "OffsetLag "
            # concurrency metrics
            "ConcurrentExecutions ProvisionedConcurrentExecutions "
            "ProvisionedConcurrencyUtilization "
            # asynchronous invocation metrics
            "AsyncEventsReceived AsyncEventAge AsyncEventsDropped",
            _FUNCTION,
        ),
        # Emitted across all functions of a Region only.
        **_each("UnreservedConcurrentExecutions ClaimedAccountConcurrency", _sets("")),
        # Event source mapping metrics (with MetricsConfig EventCount).
        **_each(
            "PolledEventCount InvokedEventCount FilteredOutEventCount FailedInvokeEventCount "
            "DeletedEventCount DroppedEventCount OnFailureDestinationDeliveredEventCount",
            _sets("EventSourceMappingUUID"),
        ),
    },
)

# ------------------------------------------------------------------------ AWS/Events
# "Metrics that specify only the RuleName dimension refer to the default event bus.
# Metrics that specify both the EventBusName and RuleName dimensions refer to a
# custom event bus." ("None" in the table: across the account.)
_RULE = _sets("RuleName", "EventBusName,RuleName")
_RULE_OR_NONE = _sets("", *("RuleName", "EventBusName,RuleName"))
_BUS_RULE_OR_NONE = _sets("", "EventBusName", "RuleName", "EventBusName,RuleName")
_EVENTS = Namespace(
    "https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-monitoring.html",
    {
        **_each(
            "DeadLetterInvocations FailedInvocations InvocationsFailedToBeSentToDlq "
            "InvocationsSentToDlq TriggeredRules",
            _RULE,
        ),
        **_each(
            "Invocations ThrottledRules RetryInvocationAttempts SuccessfulInvocationAttempts",
            _RULE_OR_NONE,
        ),
        **_each(
            "InvocationAttempts IngestionToInvocationCompleteLatency "
            "IngestionToInvocationStartLatency IngestionToInvocationSuccessLatency",
            _BUS_RULE_OR_NONE,
        ),
        "MatchedEvents": _sets(
            "", "RuleName", "EventBusName,RuleName", "EventBusName", "EventSourceName"
        ),
        "Events": _sets("EventSourceName"),
        **_each(
            "InvocationsCreated PutEventsApproximateCallCount PutEventsApproximateFailedCount "
            "PutEventsApproximateSuccessCount PutEventsApproximateThrottledCount "
            "PutEventsEntriesCount PutEventsFailedEntriesCount PutEventsLatency "
            "PutEventsRequestSize PutPartnerEventsApproximateCallCount "
            "PutPartnerEventsApproximateFailedCount PutPartnerEventsApproximateSuccessCount "
            "PutPartnerEventsApproximateThrottledCount PutPartnerEventsEntriesCount "
            "PutPartnerEventsFailedEntriesCount PutPartnerEventsLatency",
            _sets(""),
        ),
    },
)

# ------------------------------------------------------------------------ AWS/States
_STATES = Namespace(
    "https://docs.aws.amazon.com/step-functions/latest/dg/procedure-cw-metrics.html",
    {
        **_each(
            "ExecutionTime ExecutionThrottled ExecutionsAborted ExecutionsFailed "
            "ExecutionsStarted ExecutionsSucceeded ExecutionsTimedOut ExecutionsRedriven "
            "RedrivenExecutionsAborted RedrivenExecutionsFailed RedrivenExecutionsSucceeded "
            "RedrivenExecutionsTimedOut ExpressExecutionMemory ExpressExecutionBilledDuration "
            "ExpressExecutionBilledMemory",
            _sets("StateMachineArn"),
        ),
        **_each(
            "ActivityRunTime ActivityScheduleTime ActivityTime ActivitiesFailed "
            "ActivitiesHeartbeatTimedOut ActivitiesScheduled ActivitiesStarted "
            "ActivitiesSucceeded ActivitiesTimedOut",
            _sets("ActivityArn"),
        ),
        **_each(
            "LambdaFunctionRunTime LambdaFunctionScheduleTime LambdaFunctionTime "
            "LambdaFunctionsFailed LambdaFunctionsHeartbeatTimedOut LambdaFunctionsScheduled "
            "LambdaFunctionsStarted LambdaFunctionsSucceeded LambdaFunctionsTimedOut",
            _sets("LambdaFunctionArn"),
        ),
        **_each(
            "ServiceIntegrationRunTime ServiceIntegrationScheduleTime ServiceIntegrationTime "
            "ServiceIntegrationsFailed ServiceIntegrationsScheduled ServiceIntegrationsStarted "
            "ServiceIntegrationsSucceeded ServiceIntegrationsTimedOut",
            _sets("ServiceIntegrationResourceArn"),
        ),
        # Service (state transitions: ServiceMetric=StateTransition) and API metrics.
        **_each(
            "ThrottledEvents ProvisionedBucketSize ProvisionedRefillRate ConsumedCapacity",
            _sets("ServiceMetric", "APIName"),
        ),
    },
)

# ----------------------------------------------------------------------- AWS/Kinesis
_STREAM = _sets("StreamName")
_SHARD = _sets("StreamName,ShardId")
_KINESIS = Namespace(
    "https://docs.aws.amazon.com/streams/latest/dev/monitoring-with-cloudwatch.html",
    {
        # Basic stream-level metrics.
        **_each(
            "GetRecords.Bytes GetRecords.IteratorAge GetRecords.IteratorAgeMilliseconds "
            "GetRecords.Latency GetRecords.Records GetRecords.Success PutRecord.Bytes "
            "PutRecord.Latency PutRecord.Success PutRecords.Bytes PutRecords.Latency "
            "PutRecords.Records PutRecords.Success PutRecords.TotalRecords "
            "PutRecords.SuccessfulRecords PutRecords.FailedRecords "
            "PutRecords.ThrottledRecords",
            _STREAM,
        ),
        # Names at both levels (enhanced shard-level monitoring adds ShardId).
        **_each(
            "IncomingBytes IncomingRecords ReadProvisionedThroughputExceeded "
            "WriteProvisionedThroughputExceeded",
            _STREAM + _SHARD,
        ),
        **_each("IteratorAgeMilliseconds OutgoingBytes OutgoingRecords", _SHARD),
        # Enhanced fan-out consumers.
        **_each(
            "SubscribeToShard.RateExceeded SubscribeToShard.Success "
            "SubscribeToShardEvent.Bytes SubscribeToShardEvent.MillisBehindLatest "
            "SubscribeToShardEvent.Records SubscribeToShardEvent.Success",
            _sets("StreamName,ConsumerName"),
        ),
    },
)

# ---------------------------------------------------------------------- AWS/DynamoDB
_TABLE = _sets("TableName")
_TABLE_OR_INDEX = _sets("TableName", "TableName,GlobalSecondaryIndexName")
_INDEX = _sets("TableName,GlobalSecondaryIndexName")
_OPERATION = _sets("TableName,Operation")
_STREAM_READS = _sets("TableName,Operation,StreamLabel")
_REPLICA = _sets("TableName,ReceivingRegion")
_DYNAMODB = Namespace(
    "https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/metrics-dimensions.html",
    {
        # Per account and Region.
        **_each(
            "AccountMaxReads AccountMaxTableLevelReads AccountMaxTableLevelWrites "
            "AccountMaxWrites AccountProvisionedReadCapacityUtilization "
            "AccountProvisionedWriteCapacityUtilization "
            "MaxProvisionedTableReadCapacityUtilization "
            "MaxProvisionedTableWriteCapacityUtilization UserErrors",
            _sets(""),
        ),
        **_each(
            "ConditionalCheckFailedRequests TimeToLiveDeletedItemCount TransactionConflict",
            _TABLE,
        ),
        **_each(
            "ConsumedReadCapacityUnits ConsumedWriteCapacityUnits ProvisionedReadCapacityUnits "
            "ProvisionedWriteCapacityUnits ReadThrottleEvents WriteThrottleEvents "
            "OnDemandMaxReadRequestUnits OnDemandMaxWriteRequestUnits",
            _TABLE_OR_INDEX,
        ),
        **_each(
            "OnlineIndexConsumedWriteCapacity OnlineIndexPercentageProgress "
            "OnlineIndexThrottleEvents",
            _INDEX,
        ),
        **_each(
            "ReturnedItemCount SuccessfulRequestLatency SystemErrors ThrottledRequests",
            _OPERATION,
        ),
        **_each("ReturnedBytes ReturnedRecordsCount", _STREAM_READS),
        **_each("PendingReplicationCount ReplicationLatency", _REPLICA),
    },
)

NAMESPACES: Final[Mapping[str, Namespace]] = {
    "AWS/SQS": _SQS,
    "AWS/Lambda": _LAMBDA,
    "AWS/Events": _EVENTS,
    "AWS/States": _STATES,
    "AWS/Kinesis": _KINESIS,
    "AWS/DynamoDB": _DYNAMODB,
}


def _describe(dimensions: DimensionSet) -> str:
    return ", ".join(sorted(dimensions)) or "no dimension"


def metric_problem(namespace: str, metric: str, dimensions: Iterable[str]) -> str | None:
    """Why AWS never publishes `metric` of `namespace` with exactly these dimension
    names, saying what it does publish; None when it does (or when `namespace` is not
    in `NAMESPACES`: a custom namespace, or an AWS one the table does not cover)."""
    known = NAMESPACES.get(namespace)
    if known is None:
        return None
    published = known.metrics.get(metric)
    if published is None:
        return (
            f"{namespace} has no metric {metric!r}; it publishes "
            f"{', '.join(sorted(known.metrics))} (see {known.source})"
        )
    given = frozenset(dimensions)
    if given in published:
        return None
    allowed = " | ".join(sorted(_describe(s) for s in published))
    return (
        f"{namespace} publishes {metric} with the dimensions {allowed}, not with "
        f"{_describe(given)} (see {known.source})"
    )
