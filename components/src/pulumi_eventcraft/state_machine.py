"""A Step Functions state machine with its own least-privilege role, logs and alarms.

The definition is ASL as a dict (e.g. from `pulumi_eventcraft.saga`) whose values may be Pulumi
Outputs (Lambda ARNs of functions declared in the same program); it is checked
structurally before any resource is declared and rendered to JSON once the ARNs are
known. The role may invoke exactly the functions in `task_function_arns` (and their
versions/aliases), and a definition that calls any other function is refused at
render time, since it would fail at run time with AccessDenied.

An EXPRESS execution is stopped after 5 minutes wherever it is, e.g. halfway through
its compensations, so an EXPRESS definition's worst case (`worst_case_duration`: the
longest path through its states, each task's timeout x its attempts plus the retries'
waits) must fit in that limit; it is checked when the state machine is declared.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal

import pulumi
import pulumi_aws as aws

from pulumi_eventcraft.alarms import metric_alarm
from pulumi_eventcraft.function import LOG_RETENTION_DAYS, scoped_name
from pulumi_eventcraft.iam import LOG_DELIVERY_ACTIONS, Statement, grant_policy, service_role
from pulumi_eventcraft.tags import Tags, check_tags, tag_input

STATE_TYPES: Final = frozenset(
    {"Task", "Pass", "Choice", "Wait", "Succeed", "Fail", "Parallel", "Map"}
)
_TERMINAL_TYPES: Final = frozenset({"Succeed", "Fail"})
MAX_STATE_NAME = 80
MAX_NAME = 80  # a state machine's name
XRAY_ACTIONS: Final = (
    "xray:PutTraceSegments",
    "xray:PutTelemetryRecords",
    "xray:GetSamplingRules",
    "xray:GetSamplingTargets",
)
# An EXPRESS execution's limit (Step Functions quotas); a Lambda invocation's longest run.
EXPRESS_MAX_SECONDS: Final = 300
LAMBDA_MAX_SECONDS: Final = 900
MAX_TASK_SECONDS: Final = 99999999  # ASL's limit on TimeoutSeconds
_FUNCTION_ARN = re.compile(r"^arn:aws[a-z-]*:lambda:[a-z0-9-]+:\d{12}:function:[A-Za-z0-9_-]+$")
_LAMBDA_RESOURCE = re.compile(r"^arn:aws[a-z-]*:lambda:")
_LAMBDA_INVOKE = re.compile(r"^arn:aws[a-z-]*:states:::lambda:invoke")
# Integration patterns an EXPRESS workflow cannot use.
_EXPRESS_UNSUPPORTED = (".sync", ".waitForTaskToken")


class DefinitionError(ValueError):
    """The ASL definition is not a valid state machine."""


class ExpressDurationError(ValueError):
    """An EXPRESS state machine whose executions can outlast EXPRESS's 5 minutes."""


@dataclass(frozen=True, kw_only=True)
class StateMachineArgs:
    """Arguments of a StateMachine; the defaults are the secure choice.

    definition: the ASL definition as a dict (StartAt, States, ...). Any value may be a
        Pulumi Output (e.g. a Lambda ARN); it is rendered to JSON once known.
    task_function_arns: the unqualified Lambda function ARNs the definition invokes; the
        role may call lambda:InvokeFunction on exactly these and their `:*` versions and
        aliases (default none).
    type: "STANDARD" (default: exactly-once steps, up to a year) or "EXPRESS" (at least
        once, up to 5 minutes, no `.sync` / `.waitForTaskToken` tasks). An EXPRESS
        definition whose worst case (`worst_case_duration`) is over 5 minutes is refused.
    max_task_seconds: the longest a Task without TimeoutSeconds runs, in seconds (e.g.
        the longest timeout of the functions it invokes), for the EXPRESS check (default
        None: a Lambda task counts as Lambda's 900 s maximum, any other as unbounded).
    log_level: "ERROR" (default), "ALL", "FATAL" or "OFF". Logs go to a log group of
        its own, `/aws/vendedlogs/states/<state machine name>`. "OFF" is refused for EXPRESS, whose
        executions leave no history anywhere else.
    include_execution_data: log states' input and output (default False: inputs may carry
        personal data; error events are logged either way).
    log_retention_days: how long logs are kept, in days (default 14; a CloudWatch
        retention period: 1, 3, 5, 7, 14, 30, 60, 90, ...).
    log_kms_key_arn: a KMS key to encrypt the log group with (default None: CloudWatch
        Logs' own encryption at rest); its key policy must let CloudWatch Logs use it.
    tracing: X-Ray tracing of executions (default True).
    alarms: alarm on failed and on timed-out executions, each >= 1 per minute (default
        True).
    alarm_actions: SNS topic ARNs the alarms notify (default none).
    tags: tags of the state machine, its role, log group and alarms (default none).
    """

    definition: Mapping[str, Any]
    task_function_arns: Sequence[pulumi.Input[str]] = ()
    type: Literal["STANDARD", "EXPRESS"] = "STANDARD"
    max_task_seconds: int | None = None
    log_level: Literal["ALL", "ERROR", "FATAL", "OFF"] = "ERROR"
    include_execution_data: bool = False
    log_retention_days: int = 14
    log_kms_key_arn: pulumi.Input[str] | None = None
    tracing: bool = True
    alarms: bool = True
    alarm_actions: Sequence[pulumi.Input[str]] = ()
    tags: Tags = None


class StateMachine(pulumi.ComponentResource):
    """A state machine, its role, its log group and its alarms.

    Children: `{name}-sm` (named `<project>-<stack>-<name>`), `{name}-role`,
    `{name}-role-policy`, `{name}-logs`, `{name}-failed-alarm`, `{name}-timedout-alarm`.

    Attributes: `state_machine` (aws.sfn.StateMachine), `arn`, `name`, `role`,
    `role_policy` (its inline policy; None when it needs no permission),
    `log_group` (None when log_level is "OFF"), `definition` (the rendered JSON),
    `alarms` (the MetricAlarms, by metric name).
    """

    state_machine: aws.sfn.StateMachine
    arn: pulumi.Output[str]
    name: pulumi.Output[str]
    role: aws.iam.Role
    role_policy: aws.iam.RolePolicy | None
    log_group: aws.cloudwatch.LogGroup | None
    definition: pulumi.Output[str]
    alarms: dict[str, aws.cloudwatch.MetricAlarm]

    def __init__(
        self, name: str, args: StateMachineArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        _validate_args(args)
        if args.type == "EXPRESS":
            _check_express_duration(name, args)
        super().__init__("eventcraft:index:StateMachine", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        # An explicit name, unique per stack (as Functions have): the role's trust
        # policy and the log group can then name exactly this state machine.
        physical = scoped_name(name, max_length=MAX_NAME)

        self.log_group = None
        if args.log_level != "OFF":
            self.log_group = aws.cloudwatch.LogGroup(
                f"{name}-logs",
                # The vendedlogs prefix keeps the account's logs resource policy small.
                name=f"/aws/vendedlogs/states/{physical}",
                retention_in_days=args.log_retention_days,
                kms_key_id=args.log_kms_key_arn,
                tags=tag_input(args.tags),
                opts=child,
            )

        statements: list[Statement] = []
        if args.task_function_arns:
            resources: list[pulumi.Input[str]] = []
            for arn in args.task_function_arns:
                resources.append(arn)
                resources.append(pulumi.Output.concat(arn, ":*"))
            statements.append(
                Statement(
                    sid="InvokeTaskFunctions",
                    actions=["lambda:InvokeFunction"],
                    resources=resources,
                )
            )
        if self.log_group is not None:
            statements.append(
                Statement(sid="VendedLogDelivery", actions=LOG_DELIVERY_ACTIONS, resources=["*"])
            )
        if args.tracing:
            statements.append(Statement(sid="XRayTracing", actions=XRAY_ACTIONS, resources=["*"]))

        account = aws.get_caller_identity_output().account_id
        region = aws.get_region_output().region
        partition = aws.get_partition_output().partition
        # Confused deputy: only this state machine may assume the role, not any state
        # machine that someone points at it.
        source_arn = pulumi.Output.concat(
            "arn:", partition, ":states:", region, ":", account, ":stateMachine:", physical
        )
        self.role = service_role(
            f"{name}-role",
            service="states.amazonaws.com",
            statements=(),
            parent=self,
            description=f"Execution role of the {name} state machine",
            source_arn=source_arn,
            tags=args.tags,
        )
        # The policy is kept as a handle so that the state machine waits for it: AWS
        # refuses a logging configuration the role cannot yet deliver to.
        self.role_policy = (
            grant_policy(f"{name}-role-policy", self.role, statements, parent=self)
            if statements
            else None
        )

        allowed = list(args.task_function_arns)
        self.definition = pulumi.Output.all(
            pulumi.Output.from_input(_plain(args.definition)), pulumi.Output.all(*allowed)
        ).apply(lambda resolved: _render(resolved[0], resolved[1], name))

        logging = None
        if self.log_group is not None:
            logging = aws.sfn.StateMachineLoggingConfigurationArgs(
                level=args.log_level,
                include_execution_data=args.include_execution_data,
                log_destination=pulumi.Output.concat(self.log_group.arn, ":*"),
            )
        self.state_machine = aws.sfn.StateMachine(
            f"{name}-sm",
            name=physical,
            definition=self.definition,
            role_arn=self.role.arn,
            type=args.type,
            logging_configuration=logging,
            tracing_configuration=aws.sfn.StateMachineTracingConfigurationArgs(
                enabled=args.tracing
            ),
            tags=tag_input(args.tags),
            opts=pulumi.ResourceOptions(
                parent=self, depends_on=[self.role_policy] if self.role_policy else []
            ),
        )
        self.arn = self.state_machine.arn
        self.name = self.state_machine.name

        self.alarms = {}
        if args.alarms:
            for metric, what in (
                ("ExecutionsFailed", "failed"),
                ("ExecutionsTimedOut", "timed out"),
            ):
                self.alarms[metric] = metric_alarm(
                    f"{name}-{metric[len('Executions') :].lower()}-alarm",
                    namespace="AWS/States",
                    metric_name=metric,
                    dimensions={"StateMachineArn": self.state_machine.arn},
                    threshold=1,
                    statistic="Sum",
                    alarm_actions=args.alarm_actions,
                    description=f"An execution of the {name} state machine {what}",
                    parent=self,
                    tags=args.tags,
                )

        self.register_outputs(
            {
                "arn": self.arn,
                "name": self.name,
                "roleArn": self.role.arn,
                "logGroupName": self.log_group.name if self.log_group else None,
            }
        )

    def start_execution_statements(self) -> list[Statement]:
        """What a caller (e.g. an EventBridge rule's role) needs to start executions."""
        return [
            Statement(
                sid="StartExecution",
                actions=["states:StartExecution"],
                resources=[self.arn],
            )
        ]


def _validate_args(args: StateMachineArgs) -> None:
    check_tags("StateMachineArgs", args.tags)
    if args.type not in ("STANDARD", "EXPRESS"):
        raise ValueError(
            f"StateMachineArgs.type must be 'STANDARD' or 'EXPRESS', got {args.type!r}"
        )
    if args.log_level not in ("ALL", "ERROR", "FATAL", "OFF"):
        raise ValueError(
            "StateMachineArgs.log_level must be 'ALL', 'ERROR', 'FATAL' or 'OFF', "
            f"got {args.log_level!r}"
        )
    if args.type == "EXPRESS" and args.log_level == "OFF":
        raise ValueError(
            "StateMachineArgs.log_level 'OFF' with type 'EXPRESS': Express executions keep "
            "no history, so failures would leave no trace; use 'ERROR' (default), 'FATAL' "
            "or 'ALL'"
        )
    if args.log_level != "OFF" and args.log_retention_days not in LOG_RETENTION_DAYS:
        raise ValueError(
            "StateMachineArgs.log_retention_days must be a CloudWatch Logs retention period "
            f"({', '.join(map(str, LOG_RETENTION_DAYS))}), got {args.log_retention_days}"
        )
    if args.max_task_seconds is not None and not 1 <= args.max_task_seconds <= MAX_TASK_SECONDS:
        raise ValueError(
            f"StateMachineArgs.max_task_seconds must be 1..{MAX_TASK_SECONDS} seconds or None, "
            f"got {args.max_task_seconds}"
        )
    if isinstance(args.task_function_arns, str):
        raise ValueError("StateMachineArgs.task_function_arns must be a list of ARNs, not a str")
    for arn in args.task_function_arns:
        _check_function_arn(arn)
    validate_definition(args.definition, express=args.type == "EXPRESS")
    # What is known now is checked now; Output ARNs again when they resolve (_render).
    allowed = list(args.task_function_arns)
    if all(isinstance(arn, str) for arn in allowed):
        _check_covered(lambda_task_arns(args.definition), [str(a) for a in allowed])


def _check_express_duration(name: str, args: StateMachineArgs) -> None:
    try:
        worst = worst_case_duration(args.definition, max_task_seconds=args.max_task_seconds)
    except UnboundedDurationError as exc:
        raise ExpressDurationError(
            f"StateMachine {name!r} is EXPRESS, which stops an execution after "
            f"{EXPRESS_MAX_SECONDS} s, but its duration has no bound: {exc}; bound it, or "
            "use type 'STANDARD'"
        ) from None
    if worst.seconds > EXPRESS_MAX_SECONDS:
        raise ExpressDurationError(
            f"StateMachine {name!r} is EXPRESS, which stops an execution after "
            f"{EXPRESS_MAX_SECONDS} s wherever it is (e.g. halfway through its "
            f"compensations), but its worst case is {worst.seconds:.0f} s: {worst.describe()}. "
            "Shorten the task timeouts (TimeoutSeconds, StateMachineArgs.max_task_seconds) "
            "or the retries, or use type 'STANDARD'"
        )


# ----------------------------------------------------------- worst-case duration


class UnboundedDurationError(ValueError):
    """A definition whose executions can run for ever (a loop, a task or wait without a
    bound); the message names the state."""


@dataclass(frozen=True)
class WorstCase:
    """The longest an execution can run, in seconds, and the path that takes it: each
    state that takes time, with its own worst case."""

    seconds: float
    path: tuple[tuple[str, float], ...]

    def describe(self) -> str:
        return " -> ".join(f"{state} {math.ceil(seconds)} s" for state, seconds in self.path)


def worst_case_duration(
    definition: Mapping[str, Any], *, max_task_seconds: float | None = None
) -> WorstCase:
    """The worst case of a definition: the longest path from StartAt to an end, each
    Task counting its timeout x (1 + every retrier's MaxAttempts) plus each retry's wait
    (IntervalSeconds x BackoffRate^n, capped by MaxDelaySeconds; jitter only shortens
    it), a Wait its Seconds, a Parallel its longest branch, a Map one run of its
    processor (its items run side by side).

    A Task's timeout: its TimeoutSeconds, at most `max_task_seconds` when given; without
    TimeoutSeconds, `max_task_seconds`, or Lambda's 900 s for a Lambda task (a Resource
    only known at deploy time counts as one). Raises UnboundedDurationError for a loop,
    a Wait on a path or timestamp, or any other task without a bound.
    """
    return _scope_worst_case(definition, max_task_seconds, "")


def _scope_worst_case(
    scope: Mapping[str, Any], max_task_seconds: float | None, where: str
) -> WorstCase:
    states: Mapping[str, Any] = scope.get("States") or {}
    longest: dict[str, WorstCase] = {}
    visiting: set[str] = set()

    def walk(name: str) -> WorstCase:
        if name in longest:
            return longest[name]
        if name in visiting:
            raise UnboundedDurationError(f"state {where}{name!r} can run again (a loop)")
        visiting.add(name)
        state = states[name]
        own = _state_seconds(state, f"{where}{name}", max_task_seconds)
        following = [walk(target) for target in _targets(state, f"state {name!r}")]
        rest = max(following, key=lambda w: w.seconds, default=WorstCase(0.0, ()))
        path = ((f"{where}{name}", own), *rest.path) if own > 0 else rest.path
        longest[name] = WorstCase(own + rest.seconds, path)
        visiting.discard(name)
        return longest[name]

    return walk(str(scope["StartAt"]))


def _state_seconds(state: Mapping[str, Any], name: str, max_task_seconds: float | None) -> float:
    """One state's own worst case, retries included."""
    typ = state.get("Type")
    if typ == "Wait":
        if "Seconds" not in state:
            raise UnboundedDurationError(
                f"Wait state {name!r} waits for a path or a timestamp, not Seconds"
            )
        return float(state["Seconds"])
    if typ == "Task":
        once = _task_seconds(state, name, max_task_seconds)
    elif typ == "Parallel":
        branches = state.get("Branches") or ()
        once = max(
            (_scope_worst_case(b, max_task_seconds, f"{name}/").seconds for b in branches),
            default=0.0,
        )
    elif typ == "Map":
        processor = state.get("ItemProcessor", state.get("Iterator")) or {}
        once = _scope_worst_case(processor, max_task_seconds, f"{name}/").seconds
    else:
        return 0.0
    attempts = 1
    waits = 0.0
    for retrier in state.get("Retry") or ():
        tries = int(retrier.get("MaxAttempts", 3))
        interval = float(retrier.get("IntervalSeconds", 1))
        rate = float(retrier.get("BackoffRate", 2.0))
        cap = retrier.get("MaxDelaySeconds")
        attempts += tries
        for n in range(tries):
            wait = interval * rate**n
            waits += min(wait, float(cap)) if cap is not None else wait
    return attempts * once + waits


def _task_seconds(state: Mapping[str, Any], name: str, max_task_seconds: float | None) -> float:
    timeout = state.get("TimeoutSeconds")
    if isinstance(timeout, int | float) and not isinstance(timeout, bool):
        return float(timeout if max_task_seconds is None else min(timeout, max_task_seconds))
    if max_task_seconds is not None:
        return float(max_task_seconds)
    resource = state.get("Resource")
    is_lambda = not isinstance(resource, str) or bool(
        _LAMBDA_RESOURCE.match(resource) or _LAMBDA_INVOKE.match(resource)
    )
    if is_lambda:
        return float(LAMBDA_MAX_SECONDS)
    raise UnboundedDurationError(
        f"Task state {name!r} ({resource}) has no TimeoutSeconds; give it one, or set "
        "StateMachineArgs.max_task_seconds"
    )


def _check_function_arn(arn: Any) -> None:
    if isinstance(arn, str) and not _FUNCTION_ARN.match(arn):
        raise ValueError(
            "StateMachineArgs.task_function_arns: each must be an unqualified Lambda function "
            f"ARN (arn:aws:lambda:<region>:<account>:function:<name>), got {arn!r}"
        )


def validate_definition(definition: Mapping[str, Any], *, express: bool = False) -> None:
    """Check the structure of an ASL definition; raise DefinitionError naming the problem.

    Checks: StartAt and States present; StartAt names a state; every state has a known
    Type, a name of at most 80 characters, and Next or End (or is terminal / a Choice);
    every Next, Default, Choices[].Next and Catch[].Next names a state of the same
    scope; no state is unreachable from StartAt; Parallel branches and Map processors
    are checked as their own scopes. With `express`, `.sync` and `.waitForTaskToken`
    tasks are refused (Express workflows do not support them).
    """
    _validate_scope(definition, "definition", express)


def _validate_scope(scope: Any, where: str, express: bool) -> None:
    if not isinstance(scope, Mapping):
        raise DefinitionError(f"{where} must be a mapping with StartAt and States")
    start = scope.get("StartAt")
    states = scope.get("States")
    if not isinstance(start, str) or not start:
        raise DefinitionError(f"{where} has no StartAt (the name of the first state)")
    if not isinstance(states, Mapping) or not states:
        raise DefinitionError(f"{where} has no States (a mapping of state name to state)")
    if start not in states:
        raise DefinitionError(
            f"{where}: StartAt {start!r} is not a state; states are {sorted(states)}"
        )
    edges: dict[str, list[str]] = {}
    for state_name, state in states.items():
        at = f"{where}: state {state_name!r}"
        edges[state_name] = _validate_state(state_name, state, at, express)
        for target in edges[state_name]:
            if target not in states:
                raise DefinitionError(
                    f"{at} goes to {target!r}, which is not a state of this scope; "
                    f"states are {sorted(states)}"
                )
    reached = {start}
    todo = [start]
    while todo:
        for target in edges[todo.pop()]:
            if target not in reached:
                reached.add(target)
                todo.append(target)
    unreachable = [s for s in states if s not in reached]
    if unreachable:
        raise DefinitionError(
            f"{where}: states {unreachable} are unreachable from StartAt {start!r}; "
            "remove them or point a Next, Default or Catch at them"
        )


def _validate_state(state_name: Any, state: Any, at: str, express: bool) -> list[str]:
    """Check one state (and its nested scopes); return the states it can go to."""
    if not isinstance(state_name, str) or not 1 <= len(state_name) <= MAX_STATE_NAME:
        raise DefinitionError(f"{at}: state names must be 1-{MAX_STATE_NAME} characters")
    if not isinstance(state, Mapping):
        raise DefinitionError(f"{at} must be a mapping")
    typ = state.get("Type")
    if typ not in STATE_TYPES:
        raise DefinitionError(f"{at}: Type {typ!r} is not one of {sorted(STATE_TYPES)}")
    has_next, has_end = "Next" in state, bool(state.get("End"))
    if typ in _TERMINAL_TYPES or typ == "Choice":
        if has_next or "End" in state:
            raise DefinitionError(f"{at}: a {typ} state takes neither Next nor End")
    elif has_next == has_end:
        raise DefinitionError(f"{at}: a {typ} state needs exactly one of Next or End: true")
    if typ == "Task":
        _validate_task(state, at, express)
    elif typ == "Parallel":
        branches = state.get("Branches")
        if not isinstance(branches, Sequence) or isinstance(branches, str) or not branches:
            raise DefinitionError(f"{at}: a Parallel state needs a non-empty Branches list")
        for i, branch in enumerate(branches):
            _validate_scope(branch, f"{at} branch {i}", express)
    elif typ == "Map":
        processor = state.get("ItemProcessor", state.get("Iterator"))
        if processor is None:
            raise DefinitionError(f"{at}: a Map state needs an ItemProcessor")
        _validate_scope(processor, f"{at} ItemProcessor", express)
    return _targets(state, at)


def _validate_task(state: Mapping[str, Any], at: str, express: bool) -> None:
    resource = state.get("Resource")
    if resource is None:
        raise DefinitionError(f"{at}: a Task state needs a Resource")
    if express and isinstance(resource, str) and resource.endswith(_EXPRESS_UNSUPPORTED):
        raise DefinitionError(
            f"{at}: EXPRESS state machines do not support the {resource!r} "
            "integration pattern (.sync / .waitForTaskToken); use type STANDARD"
        )


def _targets(state: Mapping[str, Any], at: str) -> list[str]:
    targets: list[str] = []
    if "Next" in state:
        targets.append(state["Next"])
    if state.get("Type") == "Choice":
        choices = state.get("Choices")
        if not isinstance(choices, Sequence) or isinstance(choices, str) or not choices:
            raise DefinitionError(f"{at}: a Choice state needs a non-empty Choices list")
        for i, choice in enumerate(choices):
            if not isinstance(choice, Mapping) or "Next" not in choice:
                raise DefinitionError(f"{at}: Choices[{i}] needs a Next")
            targets.append(choice["Next"])
        if "Default" in state:
            targets.append(state["Default"])
    for i, catch in enumerate(state.get("Catch") or ()):
        if not isinstance(catch, Mapping) or "Next" not in catch:
            raise DefinitionError(f"{at}: Catch[{i}] needs a Next")
        targets.append(catch["Next"])
    for target in targets:
        if not isinstance(target, str):
            raise DefinitionError(f"{at}: a Next/Default target must be a state name")
    return targets


def lambda_task_arns(definition: Mapping[str, Any]) -> list[str]:
    """The Lambda ARNs a resolved definition invokes: plain-ARN Task resources and the
    FunctionName of `arn:aws:states:::lambda:invoke` tasks, in all scopes."""
    found: list[str] = []

    def walk(scope: Mapping[str, Any]) -> None:
        for state in (scope.get("States") or {}).values():
            if state.get("Type") == "Task":
                resource = state.get("Resource")
                if isinstance(resource, str) and _LAMBDA_RESOURCE.match(resource):
                    found.append(resource)
                elif isinstance(resource, str) and _LAMBDA_INVOKE.match(resource):
                    fn = (state.get("Parameters") or {}).get("FunctionName")
                    if isinstance(fn, str):
                        found.append(fn)
            for branch in state.get("Branches") or ():
                walk(branch)
            processor = state.get("ItemProcessor", state.get("Iterator"))
            if isinstance(processor, Mapping):
                walk(processor)

    walk(definition)
    return found


def _covered(arn: str, allowed: Sequence[str]) -> bool:
    """An ARN is covered by itself or by the unqualified function ARN (its `:*`)."""
    return any(arn == a or arn.startswith(f"{a}:") for a in allowed)


def _check_covered(invoked: Sequence[str], allowed: Sequence[str]) -> None:
    missing = sorted({arn for arn in invoked if not _covered(arn, allowed)})
    if missing:
        raise DefinitionError(
            f"the definition invokes {missing}, which StateMachineArgs.task_function_arns "
            "does not list: the role could not invoke them (add them to task_function_arns)"
        )


def _render(definition: dict[str, Any], allowed: list[str], name: str) -> str:
    for arn in allowed:
        _check_function_arn(arn)
    try:
        _check_covered(lambda_task_arns(definition), allowed)
    except DefinitionError as exc:
        raise DefinitionError(f"StateMachine {name!r}: {exc}") from None
    return json.dumps(definition, indent=2)


def _plain(value: Any) -> Any:
    """Mappings and sequences as dicts and lists, which Output.from_input unwraps."""
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value
