"""The roles AWS services are given, checked when AWS checks them.

A service that works under one of your roles assumes it with sts:AssumeRole as its
service principal, and sets the confused-deputy keys to the resource it acts for:
`aws:SourceArn` (that resource's ARN) and `aws:SourceAccount` (its account). A trust
policy that does not name the service, or pins those keys to another resource, keeps
the service out. Some services try the role when they are given it (at creation) and
refuse the resource; the others find out at first use. The sandbox does the same, with
the same keys and AWS's own errors.

When a resource is created or its role or settings change (`ServiceRoleChecks`, which
`eventcraft_sandbox.moto_deploy.Sandbox` installs for its lifetime; every client's
calls are checked, the deployers' and a handler's alike):

- CreateStateMachine, UpdateStateMachine: the role trusts `states.amazonaws.com` (or
  `states.<region>.amazonaws.com`) for the state machine's ARN; else
  `AccessDeniedException` "Neither the global service principal states.amazonaws.com,
  nor the regional one is authorized to assume the provided role."
- The same, with a `loggingConfiguration` whose level is not OFF: the role's identity
  policies allow `STATES_LOG_DELIVERY_ACTIONS` on `*`; else `AccessDeniedException`
  "The state machine IAM Role is not authorized to access the Log Destination".
- CreateFunction, UpdateFunctionConfiguration (a Role given): the role trusts
  `lambda.amazonaws.com` for the function's ARN; else `InvalidParameterValueException`
  "The role defined for the function cannot be assumed by Lambda."
- The same, with `TracingConfig` `Active`: the role's identity policies allow
  `xray:PutTraceSegments`; else `InvalidParameterValueException` "The provided
  execution role does not have permissions to call PutTraceSegments on XRAY".

The identity policies are the role's inline and attached ones, judged by moto's own
evaluator (`eventcraft_sandbox.iam_policies.missing_actions`, the one that enforces
the role when handlers run); a trust policy by `eventcraft_sandbox.iam_policies.trusts`.
Which of the log-delivery actions Step Functions itself tries is not documented: the
sandbox requires all those AWS documents for a logging state machine's role (Step
Functions' developer guide, "IAM policies for logging to CloudWatch Logs").

At first use, with the same keys (`lambda_runtime.credentials.assume_role_as_service`):
a function's execution role when an invocation starts an execution environment (for the
function's ARN), a state machine's role when a task builds its client (for the state
machine's ARN), a rule target's role when EventBridge delivers (for the rule's ARN), a
function's role when its event source mapping polls or an asynchronous invocation
reaches its destination (for the function's ARN); a refusal there is the delivery's
NO_PERMISSIONS or the invocation's error, as on AWS.

Not refused, because AWS does not refuse it: a state machine with `tracingConfiguration`
enabled whose role lacks the X-Ray actions (`xray:PutTraceSegments`,
`PutTelemetryRecords`, `GetSamplingRules`, `GetSamplingTargets`) is created; its traces
are lost (X-Ray answers the role AccessDenied at run time). PutTargets does not try a
target's role: EventBridge finds out when it delivers, and so does the sandbox.

Not modelled: EventBridge Pipes (AWS validates a pipe after CreatePipe answers: the
pipe's state becomes CREATE_FAILED with a reason; the sandbox records pipes and does
not deliver them), and the role of PutRule (`RoleArn`).
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from types import TracebackType
from typing import Any, Final

from eventcraft_sandbox.iam_policies import (
    missing_actions,
    role_documents,
    service_principals,
    trusts,
)

__all__ = [
    "LAMBDA_TRACING_ACTIONS",
    "STATES_LOG_DELIVERY_ACTIONS",
    "ServiceRoleChecks",
    "lambda_role_refusal",
    "state_machine_role_refusal",
]

# What AWS requires of a state machine's role to deliver its logs (Step Functions'
# developer guide, "IAM policies for logging to CloudWatch Logs"; these actions take
# no resource but "*"). Written out here rather than imported from the components: the
# sandbox states what AWS requires, so a component that grants less is caught.
STATES_LOG_DELIVERY_ACTIONS: Final = (
    "logs:CreateLogDelivery",
    "logs:GetLogDelivery",
    "logs:UpdateLogDelivery",
    "logs:DeleteLogDelivery",
    "logs:ListLogDeliveries",
    "logs:PutResourcePolicy",
    "logs:DescribeResourcePolicies",
    "logs:DescribeLogGroups",
)
# What Lambda checks of an Active-traced function's role (its error names this action).
LAMBDA_TRACING_ACTIONS: Final = ("xray:PutTraceSegments",)

STATES_SERVICE: Final = "states.amazonaws.com"
LAMBDA_SERVICE: Final = "lambda.amazonaws.com"
STATES_NOT_ASSUMABLE: Final = (
    "Neither the global service principal states.amazonaws.com, nor the regional one is "
    "authorized to assume the provided role."
)
STATES_LOGS_DENIED: Final = (
    "The state machine IAM Role is not authorized to access the Log Destination"
)
LAMBDA_NOT_ASSUMABLE: Final = "The role defined for the function cannot be assumed by Lambda."
LAMBDA_XRAY_DENIED: Final = (
    "The provided execution role does not have permissions to call PutTraceSegments on XRAY"
)


# ------------------------------------------------------------------ the checks


def _role(role_arn: str) -> Any | None:
    """moto's IAM role with this ARN (None: no such role, or not a role ARN)."""
    from moto.iam.models import iam_backends

    parts = role_arn.split(":")
    if len(parts) < 6 or not parts[5].startswith("role/"):
        return None
    try:
        return iam_backends[parts[4]][parts[1]].get_role_by_arn(role_arn)
    except Exception:  # moto's NoSuchEntity
        return None


def _trusted(role: Any, service: str, source_arn: str) -> bool:
    return trusts(
        role.assume_role_policy_document,
        service_principals(service, source_arn.split(":")[3]),
        source_arn=source_arn,
        source_account=source_arn.split(":")[4],
    )


def state_machine_role_refusal(
    role_arn: str, state_machine_arn: str, logging: dict[str, Any] | None
) -> str | None:
    """Step Functions' refusal of `role_arn` for the state machine `state_machine_arn`
    with the `logging` configuration (the API's `loggingConfiguration`), or None.

    The role must exist and trust Step Functions for this state machine; with logging
    on, its identity policies must allow `STATES_LOG_DELIVERY_ACTIONS`.
    """
    role = _role(role_arn)
    if role is None or not _trusted(role, STATES_SERVICE, state_machine_arn):
        return STATES_NOT_ASSUMABLE
    level = str((logging or {}).get("level") or "OFF")
    if level != "OFF" and missing_actions(role_documents(role), STATES_LOG_DELIVERY_ACTIONS, "*"):
        return STATES_LOGS_DENIED
    return None


def lambda_role_refusal(role_arn: str, function_arn: str, tracing_mode: str | None) -> str | None:
    """Lambda's refusal of `role_arn` as the execution role of `function_arn` (traced
    when `tracing_mode` is "Active"), or None. A role that does not exist is left to
    moto, which refuses it with the same message."""
    role = _role(role_arn)
    if role is None:
        return None
    if not _trusted(role, LAMBDA_SERVICE, function_arn):
        return LAMBDA_NOT_ASSUMABLE
    if tracing_mode == "Active" and missing_actions(
        role_documents(role), LAMBDA_TRACING_ACTIONS, "*"
    ):
        return LAMBDA_XRAY_DENIED
    return None


# ------------------------------------------------------------------ moto hooks


def _states_denied(message: str) -> Exception:
    from moto.core.exceptions import AWSError

    return AWSError(message, exception_type="AccessDeniedException", status=400)


def _lambda_invalid(message: str) -> Exception:
    from moto.awslambda.exceptions import InvalidParameterValueException

    return InvalidParameterValueException(message)


def _function_arn(backend: Any, name: str) -> str:
    from moto.utilities.utils import get_partition

    if name.startswith("arn:"):
        return ":".join(name.split(":")[:7])
    region = backend.region_name
    return f"arn:{get_partition(region)}:lambda:{region}:{backend.account_id}:function:{name}"


def _create_state_machine(original: Callable[..., Any]) -> Callable[..., Any]:
    def create_state_machine(backend: Any, name: str, definition: str, roleArn: str,
                             *args: Any, **kwargs: Any) -> Any:  # fmt: skip
        from moto.utilities.utils import get_partition

        region, account = backend.region_name, backend.account_id
        arn = f"arn:{get_partition(region)}:states:{region}:{account}:stateMachine:{name}"
        logging = kwargs.get("loggingConfiguration", args[2] if len(args) > 2 else None)
        backend._validate_name(name)  # moto's own checks first, as it orders them
        backend._validate_role_arn(roleArn)
        refusal = state_machine_role_refusal(roleArn, arn, logging)
        if refusal is not None:
            raise _states_denied(refusal)
        return original(backend, name, definition, roleArn, *args, **kwargs)

    return functools.update_wrapper(create_state_machine, original)


def _update_state_machine(original: Callable[..., Any]) -> Callable[..., Any]:
    def update_state_machine(backend: Any, arn: str, *args: Any, **kwargs: Any) -> Any:
        role_arn = kwargs.get("role_arn", args[1] if len(args) > 1 else None)
        logging = kwargs.get("logging_configuration", args[2] if len(args) > 2 else None)
        if role_arn or logging:
            machine = backend.describe_state_machine(arn)
            refusal = state_machine_role_refusal(
                role_arn or machine.roleArn, machine.arn, logging or machine.loggingConfiguration
            )
            if refusal is not None:
                raise _states_denied(refusal)
        return original(backend, arn, *args, **kwargs)

    return functools.update_wrapper(update_state_machine, original)


def _create_function(original: Callable[..., Any]) -> Callable[..., Any]:
    def create_function(backend: Any, spec: dict[str, Any]) -> Any:
        name, role = spec.get("FunctionName"), spec.get("Role")
        if isinstance(name, str) and isinstance(role, str):
            mode = (spec.get("TracingConfig") or {}).get("Mode")
            refusal = lambda_role_refusal(role, _function_arn(backend, name), mode)
            if refusal is not None:
                raise _lambda_invalid(refusal)
        return original(backend, spec)

    return functools.update_wrapper(create_function, original)


def _update_function_configuration(original: Callable[..., Any]) -> Callable[..., Any]:
    def update_function_configuration(
        backend: Any, function_name: str, qualifier: str, body: dict[str, Any]
    ) -> Any:
        if "Role" in body or "TracingConfig" in body:
            fn = backend.get_function(function_name, qualifier)
            mode = (body.get("TracingConfig") or fn.tracing_config or {}).get("Mode")
            refusal = lambda_role_refusal(
                str(body.get("Role") or fn.role), _function_arn(backend, fn.function_name), mode
            )
            if refusal is not None:
                raise _lambda_invalid(refusal)
        return original(backend, function_name, qualifier, body)

    return functools.update_wrapper(update_function_configuration, original)


def _wrappers() -> tuple[tuple[Any, str, Callable[[Callable[..., Any]], Callable[..., Any]]], ...]:
    """The moto methods the checks wrap: (owner, attribute, wrapper)."""
    from moto.awslambda.models import LambdaBackend
    from moto.stepfunctions.models import StepFunctionBackend

    return (
        (StepFunctionBackend, "create_state_machine", _create_state_machine),
        (StepFunctionBackend, "update_state_machine", _update_state_machine),
        (LambdaBackend, "create_function", _create_function),
        (LambdaBackend, "update_function_configuration", _update_function_configuration),
    )


class ServiceRoleChecks:
    """The creation-time checks of the module docstring, on the process's moto.

    `install()` / `uninstall()` (or `with`), counted: installed once however many
    times installed, undone when the last one uninstalls. The hooked moto internals
    are checked against the pinned moto when installing
    (`lambda_runtime.moto_hooks.ROLE_HOOKS`).
    """

    _lock = threading.Lock()
    _refs = 0
    _undo: list[tuple[Any, str, Any]] = []

    def install(self) -> ServiceRoleChecks:
        from eventcraft_sandbox.lambda_runtime.moto_hooks import ROLE_HOOKS, require_moto_hooks

        with ServiceRoleChecks._lock:
            if ServiceRoleChecks._refs == 0:
                require_moto_hooks(ROLE_HOOKS)
                for owner, attribute, wrap in _wrappers():
                    original = owner.__dict__[attribute]
                    ServiceRoleChecks._undo.append((owner, attribute, original))
                    setattr(owner, attribute, wrap(original))
            ServiceRoleChecks._refs += 1
        return self

    def uninstall(self) -> None:
        with ServiceRoleChecks._lock:
            if ServiceRoleChecks._refs == 0:
                return
            ServiceRoleChecks._refs -= 1
            if ServiceRoleChecks._refs == 0:
                while ServiceRoleChecks._undo:
                    owner, attribute, original = ServiceRoleChecks._undo.pop()
                    setattr(owner, attribute, original)

    def __enter__(self) -> ServiceRoleChecks:
        return self.install()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.uninstall()
