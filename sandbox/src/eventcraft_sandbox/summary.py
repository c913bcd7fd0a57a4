"""`sandbox up`: run the program under recording mocks and summarise what it declares."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from eventcraft_sandbox.mock_deploy import Deployment, Resource, run_program_file
from eventcraft_sandbox.stack_files import project_name, stack_config

# The settings worth seeing at a glance, per resource type (camelCase input names).
KEY_SETTINGS: Mapping[str, tuple[str, ...]] = {
    "aws:sqs/queue:Queue": (
        "fifoQueue",
        "visibilityTimeoutSeconds",
        "messageRetentionSeconds",
        "sqsManagedSseEnabled",
        "kmsMasterKeyId",
    ),
    "aws:dynamodb/table:Table": ("hashKey", "rangeKey", "streamViewType", "billingMode"),
    "aws:lambda/function:Function": ("runtime", "handler", "timeout", "memorySize"),
    "aws:kinesis/stream:Stream": ("retentionPeriod", "encryptionType"),
    "aws:cloudwatch/eventArchive:EventArchive": ("retentionDays",),
    "aws:cloudwatch/eventRule:EventRule": ("eventPattern",),
    "aws:cloudwatch/metricAlarm:MetricAlarm": ("metricName", "threshold"),
    "aws:cloudwatch/logGroup:LogGroup": ("retentionInDays",),
    "aws:sfn/stateMachine:StateMachine": ("type",),
}


def deploy_stack(program_dir: Path, stack: str) -> Deployment:
    """Run the project's `__main__.py` for `stack` as `pulumi up` would, under mocks."""
    return run_program_file(
        program_dir / "__main__.py",
        stack=stack,
        config=stack_config(stack, program_dir),
        project=project_name(program_dir),
    )


def _settings(resource: Resource) -> str:
    shown = []
    for key in KEY_SETTINGS.get(resource.typ, ()):
        value: Any = resource.inputs.get(key)
        if value is None:
            continue
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        text = str(value)
        shown.append(f"{key}={text if len(text) <= 60 else text[:57] + '...'}")
    return " ".join(shown)


def render(
    deployment: Deployment,
    stack: str,
    *,
    project: str,
    note: str = "mocked deployment: nothing was sent to AWS",
    created: bool = False,
) -> str:
    """A `pulumi up`-like table: type, name, key settings; then counts and outputs.

    `note` follows the stack name; `created` says the resources exist (the sandbox
    deployed them) rather than being "to create".
    """
    rows = [(r.typ, r.name, _settings(r)) for r in deployment]
    width_t = max((len(t) for t, _, _ in rows), default=4)
    width_n = max((len(n) for _, n, _ in rows), default=4)
    lines = [f"Stack {project}-{stack} ({note})", ""]
    lines.append(f"  {'Type'.ljust(width_t)}  {'Name'.ljust(width_n)}  Key settings")
    for typ, name, settings in rows:
        lines.append(f"+ {typ.ljust(width_t)}  {name.ljust(width_n)}  {settings}".rstrip())
    custom = sum(1 for r in deployment if r.custom)
    verb = "created" if created else "to create"
    lines += ["", f"Resources: {custom} {verb} ({len(rows) - custom} components)"]
    if deployment.outputs:
        lines += ["", "Outputs:"]
        lines += [f"  {k}: {v}" for k, v in sorted(deployment.outputs.items())]
    return "\n".join(lines)


def run_up(program_dir: Path, stack: str) -> str:
    return render(deploy_stack(program_dir, stack), stack, project=project_name(program_dir))
