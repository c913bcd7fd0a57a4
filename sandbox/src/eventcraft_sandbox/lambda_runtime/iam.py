"""moto's IAM checks made those of AWS: each request's resources, AWS's action
names, and denials answered as the service answers them."""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import re
from collections.abc import Callable
from typing import Any
from urllib.parse import unquote

from eventcraft_sandbox.lambda_runtime.moto_hooks import (
    INSTALL_GUARD,
    Patches,
    Registry,
    require_moto_hooks,
)

log = logging.getLogger(__name__)


Permission = tuple[str | None, str]  # (IAM action, None = the request's own; resource ARN)

Resolver = Callable[["_RequestView"], list[Permission]]


class _RequestView:
    """The parts of a moto request that name its resources."""

    def __init__(self, response: Any) -> None:
        from moto.utilities.utils import get_partition

        self.response = response
        self.account: str = response.current_account
        self.region: str = response.region
        self.partition: str = get_partition(self.region)
        self.action: str = response._get_action()
        self._json: dict[str, Any] | None = None

    @property
    def json(self) -> dict[str, Any]:
        """The request's parameters (moto's DynamoDB replaces `body` by the parsed dict)."""
        if self._json is None:
            body = self.response.body
            parsed: Any = body
            if isinstance(body, str | bytes):
                try:
                    parsed = json.loads(body) if body else {}
                except ValueError:
                    parsed = {}
            if not isinstance(parsed, dict) or not parsed:
                params = getattr(self.response, "params", None)
                parsed = params if isinstance(params, dict) else {}
            self._json = parsed
        return self._json

    def param(self, name: str) -> str | None:
        values = self.response.querystring.get(name)
        if isinstance(values, list):
            return str(values[0]) if values else None
        return str(values) if values is not None else None

    def arn(self, service: str, resource: str) -> str:
        return f"arn:{self.partition}:{service}:{self.region}:{self.account}:{resource}"


# A TransactWriteItems / TransactGetItems entry is authorised as the single-item call.
_TRANSACT_ACTIONS = {
    "Put": "dynamodb:PutItem",
    "Update": "dynamodb:UpdateItem",
    "Delete": "dynamodb:DeleteItem",
    "ConditionCheck": "dynamodb:ConditionCheckItem",
    "Get": "dynamodb:GetItem",
}


def _dynamodb_permissions(req: _RequestView) -> list[Permission]:
    body = req.json

    def table(name: str) -> str:
        return name if name.startswith("arn:") else req.arn("dynamodb", f"table/{name}")

    checks: list[Permission] = []
    if isinstance(body.get("TableName"), str):
        arn = table(body["TableName"])
        if body.get("IndexName") and req.action in ("Query", "Scan"):
            arn = f"{arn}/index/{body['IndexName']}"
        checks.append((None, arn))
    for name in body.get("RequestItems") or {}:  # BatchGetItem / BatchWriteItem
        checks.append((None, table(name)))
    for item in body.get("TransactItems") or []:
        for kind, operation in item.items() if isinstance(item, dict) else ():
            if isinstance(operation, dict) and isinstance(operation.get("TableName"), str):
                checks.append((_TRANSACT_ACTIONS.get(kind), table(operation["TableName"])))
    if isinstance(body.get("ResourceArn"), str):
        checks.append((None, body["ResourceArn"]))
    return checks


def _dynamodbstreams_resources(req: _RequestView) -> list[str]:
    body = req.json
    if isinstance(body.get("StreamArn"), str):
        return [body["StreamArn"]]
    iterator = body.get("ShardIterator")
    # moto's (and AWS's) iterators start with the stream ARN: "<stream arn>|1|<id>".
    if isinstance(iterator, str) and iterator.startswith("arn:"):
        return [iterator.split("|", 1)[0]]
    return []


def _events_resources(req: _RequestView) -> list[str]:
    body = req.json

    def bus(name: str) -> str:
        return name if name.startswith("arn:") else req.arn("events", f"event-bus/{name}")

    if req.action == "PutEvents":
        return [bus(entry.get("EventBusName") or "default") for entry in body.get("Entries", [])]
    if isinstance(body.get("EventBusName"), str):
        return [bus(body["EventBusName"])]
    return []


def _kinesis_resources(req: _RequestView) -> list[str]:
    body = req.json
    if isinstance(body.get("StreamARN"), str):
        return [body["StreamARN"]]
    name = body.get("StreamName")
    if not isinstance(name, str) and isinstance(body.get("ShardIterator"), str):
        from moto.kinesis.utils import decompose_shard_iterator

        with contextlib.suppress(Exception):
            name = decompose_shard_iterator(body["ShardIterator"])[0]
    return [req.arn("kinesis", f"stream/{name}")] if isinstance(name, str) and name else []


def _states_resources(req: _RequestView) -> list[str]:
    body = req.json
    for key in ("stateMachineArn", "executionArn", "activityArn"):
        if isinstance(body.get(key), str):
            return [body[key]]
    return []


_LAMBDA_PATH = re.compile(r"^/\d{4}-\d{2}-\d{2}/functions/([^/?]+)")


_DURABLE_EXECUTION_PATH = re.compile(r"^/\d{4}-\d{2}-\d{2}/durable-executions/([^/?]+)")


def _lambda_resources(req: _RequestView) -> list[str]:
    # A durable execution's APIs are authorised on its ARN (a sub-resource of the
    # function version: "function:<name>:*" in a policy matches it), as AWS does.
    durable = _DURABLE_EXECUTION_PATH.match(req.response.path or "")
    if durable is not None:
        return [unquote(durable.group(1))]
    match = _LAMBDA_PATH.match(req.response.path or "")
    if match is None:
        return []
    name = unquote(match.group(1))
    if name.startswith("arn:"):
        return [name]
    qualifier = req.param("Qualifier")
    arn = req.arn("lambda", f"function:{name}")
    return [f"{arn}:{qualifier}" if qualifier and ":" not in name else arn]


def _sns_resources(req: _RequestView) -> list[str]:
    for key in ("TopicArn", "TargetArn"):
        value = req.param(key)
        if value:
            return [value]
    return []


def _logs_resources(req: _RequestView) -> list[str]:
    body = req.json
    group = body.get("logGroupName")
    if not isinstance(group, str):
        return []
    stream = body.get("logStreamName")
    if isinstance(stream, str) and req.action in ("CreateLogStream", "PutLogEvents"):
        return [req.arn("logs", f"log-group:{group}:log-stream:{stream}")]
    return [req.arn("logs", f"log-group:{group}")]


def _on_resources(resolve: Callable[[_RequestView], list[str]]) -> Resolver:
    return lambda req: [(None, arn) for arn in resolve(req)]


_RESOLVERS: dict[str, Resolver] = {
    "dynamodb": _dynamodb_permissions,
    "dynamodbstreams": _on_resources(_dynamodbstreams_resources),
    "events": _on_resources(_events_resources),
    "kinesis": _on_resources(_kinesis_resources),
    "stepfunctions": _on_resources(_states_resources),
    "awslambda": _on_resources(_lambda_resources),
    "sns": _on_resources(_sns_resources),
    "logs": _on_resources(_logs_resources),
}


def request_permissions(response: Any) -> list[Permission]:
    """What IAM must allow for a moto request: (action, resource ARN) pairs.

    `response` is moto's `BaseResponse` for the request; an action of None is the
    request's own. Empty: unknown, moto's check against "*" stands. A request on
    several resources names each (PutEvents to two buses), and a transaction each of
    its items as the single-item action (a TransactWriteItems Put needs
    dynamodb:PutItem on its table; there is no dynamodb:TransactWriteItems action).
    """
    resolver = _RESOLVERS.get(getattr(response, "service_name", "") or "")
    if resolver is None:
        return []
    return list(dict.fromkeys(resolver(_RequestView(response))))


_iam_patches = Patches()


# IAM actions whose name is not "<signing name>:<operation>" (what moto checks).
IAM_ACTIONS: dict[str, str] = {
    "lambda:Invoke": "lambda:InvokeFunction",
    "lambda:InvokeWithResponseStream": "lambda:InvokeFunction",
}
# Services whose signing name is not their IAM prefix.
_IAM_PREFIXES = {"monitoring": "cloudwatch", "email": "ses"}


def aws_action(action: str) -> str:
    """The IAM action AWS authorises for moto's "<signing name>:<operation>"."""
    prefix, _, operation = action.partition(":")
    action = f"{_IAM_PREFIXES.get(prefix, prefix)}:{operation}"
    return IAM_ACTIONS.get(action, action)


def _iam_enforced() -> bool:
    from moto import settings
    from moto.core.authorization import ActionAuthenticatorMixin

    return bool(ActionAuthenticatorMixin.request_count >= settings.INITIAL_NO_AUTH_ACTION_COUNT)


def install_iam_resources() -> None:
    """Make moto's IAM checks those of AWS (counted: pair with uninstall).

    - Resources: moto authorises every service but SQS, IAM, STS and S3 against the
      resource "*", which no resource-scoped statement matches: a role allowed
      dynamodb:PutItem on one table would be denied on that table too. Each
      (action, resource) of `request_permissions` is checked instead (requests it
      does not know keep moto's "*").
    - Actions: moto checks "<signing name>:<operation>"; AWS's names differ for a few
      (Lambda Invoke is lambda:InvokeFunction, `IAM_ACTIONS`).
    - Errors: a denial on a JSON service (DynamoDB, Lambda, EventBridge, Kinesis,
      Step Functions, Logs) is AccessDeniedException in JSON, naming the resource,
      as AWS answers; moto answers XML there, which botocore reports as code "403".
    """
    with INSTALL_GUARD:
        if Registry.iam_refs == 0:
            require_moto_hooks()
            from moto.core.authorization import ActionAuthenticatorMixin
            from moto.core.exceptions import AccessDeniedError
            from moto.iam.access_control import IAMRequest

            request_classes: dict[str | None, type[IAMRequest]] = {}

            def request_class(action: str | None) -> type[IAMRequest]:
                cls = request_classes.get(action)
                if cls is None:

                    class AwsIAMRequest(IAMRequest):
                        def __init__(self, *args: Any, **kwargs: Any) -> None:
                            super().__init__(*args, **kwargs)
                            self._action = action or aws_action(self._action)

                    cls = request_classes.setdefault(action, AwsIAMRequest)
                return cls

            original = ActionAuthenticatorMixin._authenticate_and_authorize_normal_action

            def authorize(self: Any, resource: str = "*") -> None:
                checks: list[Permission] = []
                if resource == "*" and _iam_enforced():
                    try:
                        checks = request_permissions(self)
                    except Exception:  # a request we cannot read is checked as moto does
                        log.debug("could not resolve the resources of a request", exc_info=True)
                for action, arn in checks or [(None, resource)]:
                    try:
                        self._authenticate_and_authorize_action(request_class(action), arn)
                    except AccessDeniedError as denied:
                        raise _access_denied(self, denied, arn) from None

            functools.update_wrapper(authorize, original)
            _iam_patches.set(
                ActionAuthenticatorMixin, "_authenticate_and_authorize_normal_action", authorize
            )
        Registry.iam_refs += 1


@functools.cache
def _protocol(service: str) -> str:
    from moto.core.utils import get_service_model

    try:
        return str(get_service_model(service).protocol)
    except Exception:
        return ""


def _access_denied(response: Any, denied: Any, resource: str) -> Exception:
    """moto's AccessDenied as the service would answer it."""
    from moto.core.exceptions import JsonRESTError

    protocol = _protocol(getattr(response, "boto3_service_name", "") or "")
    if protocol not in ("json", "rest-json"):
        return denied
    message = str(denied.message)
    action = message.rsplit(" ", 1)[-1]
    if resource != "*":
        message += (
            f" on resource: {resource} because no identity-based policy allows the {action} action"
        )
    error = JsonRESTError("AccessDeniedException", message)
    error.code = 403 if protocol == "rest-json" else 400
    return error


def uninstall_iam_resources() -> None:
    with INSTALL_GUARD:
        if Registry.iam_refs == 0:
            return
        Registry.iam_refs -= 1
        if Registry.iam_refs == 0:
            _iam_patches.undo()
