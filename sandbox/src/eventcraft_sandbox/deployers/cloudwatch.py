"""CloudWatch Logs (LogGroup, LogResourcePolicy) and CloudWatch alarms (MetricAlarm).

An alarm is checked against the metrics AWS publishes (`eventcraft_sandbox.aws_metrics`)
before it is created: AWS creates an alarm on a metric it never publishes (a misspelt
name, a dimension the metric does not have) and the alarm never fires; the sandbox
refuses it, naming the alarm, the metric and what AWS publishes.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from eventcraft_sandbox.aws_metrics import metric_problem
from eventcraft_sandbox.deployers.base import (
    Created,
    DeployContext,
    Deployer,
    DeployError,
    ResourceRequest,
    api_shape,
    drop_none,
    outputs,
    physical_name,
    tag_list,
)


def log_group(ctx: DeployContext, request: ResourceRequest) -> Created:
    logs = ctx.for_request(request, "logs")
    name = physical_name(request)
    params = drop_none(
        {
            "logGroupName": name,
            "kmsKeyId": request.get("kmsKeyId"),
            "logGroupClass": request.get("logGroupClass"),
            "tags": dict(request.get("tags")) if request.get("tags") else None,
        }
    )
    logs.create_log_group(**params)
    retention = request.get("retentionInDays")
    # 0 is the provider's "never expire" (no retention policy).
    if retention:
        logs.put_retention_policy(logGroupName=name, retentionInDays=retention)
    found = logs.describe_log_groups(logGroupNamePrefix=name)["logGroups"]
    arn = next(g["arn"] for g in found if g["logGroupName"] == name)
    # The provider's arn has no ":*" suffix (DescribeLogGroups' arn has one).
    return name, outputs(
        request, name=name, arn=arn.removesuffix(":*"), tagsAll=request.get("tags", {})
    )


def log_resource_policy(ctx: DeployContext, request: ResourceRequest) -> Created:
    logs = ctx.for_request(request, "logs")
    name = request.require("policyName")
    logs.put_resource_policy(policyName=name, policyDocument=request.require("policyDocument"))
    return name, outputs(request)


# Pulumi input -> PutMetricAlarm parameter, for the plain (scalar or list) ones.
_ALARM_PARAMS: dict[str, str] = {
    "alarmDescription": "AlarmDescription",
    "actionsEnabled": "ActionsEnabled",
    "okActions": "OKActions",
    "alarmActions": "AlarmActions",
    "insufficientDataActions": "InsufficientDataActions",
    "metricName": "MetricName",
    "namespace": "Namespace",
    "statistic": "Statistic",
    "extendedStatistic": "ExtendedStatistic",
    "period": "Period",
    "unit": "Unit",
    "evaluationPeriods": "EvaluationPeriods",
    "datapointsToAlarm": "DatapointsToAlarm",
    "threshold": "Threshold",
    "comparisonOperator": "ComparisonOperator",
    "treatMissingData": "TreatMissingData",
    "evaluateLowSampleCountPercentiles": "EvaluateLowSampleCountPercentile",
    "thresholdMetricId": "ThresholdMetricId",
}


def _metric_query(query: dict[str, Any]) -> dict[str, Any]:
    out = api_shape({k: v for k, v in query.items() if k != "metric"})
    metric = query.get("metric")
    if metric:
        out["MetricStat"] = drop_none(
            {
                "Metric": drop_none(
                    {
                        "Namespace": metric.get("namespace"),
                        "MetricName": metric.get("metricName"),
                        "Dimensions": [
                            {"Name": k, "Value": v}
                            for k, v in (metric.get("dimensions") or {}).items()
                        ]
                        or None,
                    }
                ),
                "Period": metric.get("period"),
                "Stat": metric.get("stat"),
                "Unit": metric.get("unit"),
            }
        )
    return dict(out)


def _watched_metrics(request: ResourceRequest) -> Iterator[tuple[str, str, str, Mapping[str, Any]]]:
    """(where, namespace, metric name, dimensions) of each metric the alarm reads: its
    own, and each metric query's (metric math)."""
    if request.get("metricName") is not None:
        yield (
            "",
            str(request.get("namespace")),
            str(request.get("metricName")),
            (request.get("dimensions") or {}),
        )
    for query in request.get("metricQueries") or []:
        metric = query.get("metric")
        if metric and metric.get("metricName") is not None:
            yield (
                f"metric query {query.get('id')!r}: ",
                str(metric.get("namespace")),
                str(metric.get("metricName")),
                metric.get("dimensions") or {},
            )


def check_alarm_metrics(request: ResourceRequest, alarm_name: str) -> None:
    """Raise DeployError for an alarm watching a metric AWS never publishes."""
    for where, namespace, metric, dimensions in _watched_metrics(request):
        problem = metric_problem(namespace, metric, dimensions)
        if problem is not None:
            raise DeployError(
                f"{request.typ} {request.name!r}: alarm {alarm_name!r} {where}watches "
                f"{namespace} {metric} ({', '.join(sorted(dimensions)) or 'no dimension'}), "
                f"a metric AWS never publishes: {problem}. AWS would accept it, but it would "
                "never fire; the sandbox refuses it"
            )


def metric_alarm(ctx: DeployContext, request: ResourceRequest) -> Created:
    cloudwatch = ctx.for_request(request, "cloudwatch")
    name = physical_name(request)
    check_alarm_metrics(request, name)
    params: dict[str, Any] = {"AlarmName": name}
    for key, api_key in _ALARM_PARAMS.items():
        if request.get(key) is not None:
            params[api_key] = request.get(key)
    dimensions = request.get("dimensions") or {}
    if dimensions:
        params["Dimensions"] = [{"Name": k, "Value": v} for k, v in dimensions.items()]
    queries = request.get("metricQueries") or []
    if queries:
        params["Metrics"] = [_metric_query(q) for q in queries]
    tags = tag_list(request.get("tags"))
    if tags:
        params["Tags"] = tags
    cloudwatch.put_metric_alarm(**params)
    alarm = cloudwatch.describe_alarms(AlarmNames=[name])["MetricAlarms"][0]
    return name, outputs(request, name=name, arn=alarm["AlarmArn"], tagsAll=request.get("tags", {}))


DEPLOYERS: dict[str, Deployer] = {
    "aws:cloudwatch/logGroup:LogGroup": log_group,
    "aws:cloudwatch/logResourcePolicy:LogResourcePolicy": log_resource_policy,
    "aws:cloudwatch/metricAlarm:MetricAlarm": metric_alarm,
}
