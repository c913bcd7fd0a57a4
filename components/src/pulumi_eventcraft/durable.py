"""Lambda durable functions: their configuration, limits, permissions and Regions.

A durable function (AWS, December 2025) checkpoints its progress and may run, across
many invocations, for up to a year. `Function` takes a `DurableConfig`
(`FunctionArgs.durable`); this module holds what is true of durable functions
whatever the function: AWS's limits, the execution-role actions, the alias every
caller invokes, and the Regions that offer them.

Facts and their sources (AWS documentation, read 2026-12-07):

- `ExecutionTimeout` 1..31,622,400 s (a 366-day year), required;
  `RetentionPeriodInDays` 1..90, default 14 (Lambda API `DurableConfig`, SAM
  `DurableConfig`, CloudFormation `AWS::Lambda::Function DurableConfig`). Durability
  is set when a function is created: turning it on or off replaces the function.
- Runtimes: python3.13 and python3.14 among the Python ones ("Supported runtimes for
  durable functions", Lambda Developer Guide).
- Execution role: `lambda:CheckpointDurableExecution` and
  `lambda:GetDurableExecutionState` ("Security and permissions for Lambda durable
  functions"). Lambda authorizes them against the durable execution ARN,
  `arn:...:function:<name>:<version>/durable-execution/<execution name>/<id>`: an
  unqualified function ARN never matches it, `arn:...:function:<name>:*` matches the
  executions of every version (the qualifier is a version even when an alias was
  invoked).
- Invocation: an unqualified ARN is refused ("You cannot invoke a durable function
  using an unqualified ARN"); `$LATEST` is refused as a Lambda permission qualifier.
  So a durable function is invoked through an alias of a published version, and its
  resource-policy statements name that alias.
"""

from __future__ import annotations

from dataclasses import dataclass

# Lambda API DurableConfig: ExecutionTimeout (seconds) and RetentionPeriodInDays.
MIN_EXECUTION_TIMEOUT_SECONDS, MAX_EXECUTION_TIMEOUT_SECONDS = 1, 31_622_400
MIN_RETENTION_DAYS, MAX_RETENTION_DAYS = 1, 90
DEFAULT_RETENTION_DAYS = 14
# The oldest Python runtime Lambda runs durable functions on.
MIN_PYTHON_MINOR = 13
# What a durable function's role needs to checkpoint and to read its state on replay.
EXECUTION_ACTIONS: tuple[str, ...] = (
    "lambda:CheckpointDurableExecution",
    "lambda:GetDurableExecutionState",
)
# The alias callers invoke; it follows the version published by the last deployment.
ALIAS_NAME = "live"

# Regions where Lambda offers durable functions.
# Source: the pulumi-aws 7.51 `aws.lambda_.Function.durable_config` documentation
# ("may only be available in limited regions, including us-east-2", pointing at
# https://builder.aws.com/build/capabilities) and AWS's launch of 2025-12-02 (general
# availability in US East (Ohio)). The Lambda Developer Guide pages on durable
# functions (read 2026-12-07) list no Regions, and AWS's capability explorer was not
# available to read, so this table holds only the Region those sources name. Add a
# Region here once AWS lists it.
# Last checked: 2026-12-07.
DURABLE_FUNCTION_REGIONS: frozenset[str] = frozenset({"us-east-2"})


def check_durable_region(region: str, *, field: str = "region") -> None:
    """Raise ValueError naming `region` (and `field`, the setting it came from) unless
    Lambda offers durable functions there; the error lists the Regions that do."""
    if region not in DURABLE_FUNCTION_REGIONS:
        raise ValueError(
            f"{field}: Lambda durable functions are not offered in {region!r}; they are "
            f"offered in {', '.join(sorted(DURABLE_FUNCTION_REGIONS))} "
            "(pulumi_eventcraft.durable.DURABLE_FUNCTION_REGIONS)"
        )


@dataclass(frozen=True, kw_only=True)
class DurableConfig:
    """Makes a `Function` durable (`FunctionArgs.durable`).

    - `execution_timeout_seconds` (required): how long a whole durable execution (all
      its invocations and waits) may run, 1..31,622,400 s (366 days). Each invocation
      is still bounded by the function's `timeout_seconds`.
    - `retention_period_days`: 14 (default), 1..90: how long Lambda keeps the history of
      a closed execution.
    """

    execution_timeout_seconds: int
    retention_period_days: int = DEFAULT_RETENTION_DAYS

    def __post_init__(self) -> None:
        _check_whole(
            "durable.execution_timeout_seconds",
            self.execution_timeout_seconds,
            MIN_EXECUTION_TIMEOUT_SECONDS,
            MAX_EXECUTION_TIMEOUT_SECONDS,
            "seconds",
            note=" (366 days)",
        )
        _check_whole(
            "durable.retention_period_days",
            self.retention_period_days,
            MIN_RETENTION_DAYS,
            MAX_RETENTION_DAYS,
            "days",
        )


def _check_whole(
    field: str, value: object, low: int, high: int, unit: str, *, note: str = ""
) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{field}: {value!r} must be a whole number of {unit}")
    if not low <= value <= high:
        raise ValueError(f"{field}: {value} is outside {low}..{high} {unit}{note}")
