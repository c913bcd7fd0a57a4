"""The deployed stack's outputs: where they come from and the typed model ops reads.

Sources (`load`), in this order:
- `--outputs FILE`: the JSON of `pulumi stack output --json` saved to a file;
- `--stack NAME`: runs `pulumi stack output --json --stack NAME` (the Pulumi CLI must
  be on PATH and logged in to the stack's backend).

The model (`StackOutputs`) is what every command reads: camelCase keys, unknown keys
ignored (a newer program may export more). A command that needs a value the outputs do
not have fails with `MissingOutputError` naming it (exit code 2), never with a KeyError.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic.alias_generators import to_camel

from ops.errors import MissingOutputError, UsageError
from ops.inputs import parse_json, read_text

# What feeds a dead-letter queue, hence how its messages look and where they go back:
# queue: a work queue's redrive (body = the original message; back to that queue);
# rule-target: an EventBridge rule target's DLQ (body = the event; back on the bus);
# lambda-destination: a Lambda async on-failure destination (body = a record with the
#   requestPayload; back to the function, or the event back on the bus);
# stream-failure: an event source mapping's on-failure destination for a DynamoDB or
#   Kinesis stream (body = a pointer to the records; nothing to move).
DlqKind = Literal["queue", "rule-target", "lambda-destination", "stream-failure"]
DLQ_KINDS: Final[tuple[str, ...]] = (
    "queue",
    "rule-target",
    "lambda-destination",
    "stream-failure",
)
PULUMI_TIMEOUT_SECONDS: Final = 120


class _Model(BaseModel):
    model_config = ConfigDict(
        alias_generator=to_camel, validate_by_name=True, validate_by_alias=True, frozen=True
    )


class QueueOutput(_Model):
    """A work queue and the DLQ its redrive policy feeds."""

    url: str
    arn: str | None = None
    dlq_url: str | None = None
    dlq_arn: str | None = None


class DlqOutput(_Model):
    """A dead-letter queue. `kind`: what feeds it (see DlqKind; None: decided per
    message). `source`: the queue URL it came from, for kind "queue" (None: read from
    the DLQ's redrive-allow policy / ListDeadLetterSourceQueues)."""

    url: str
    arn: str | None = None
    kind: DlqKind | None = None
    source: str | None = None


@dataclass(frozen=True)
class NamedDlq:
    """A DLQ of the stack with the name the outputs give it."""

    name: str
    url: str
    arn: str | None
    kind: str | None
    source: str | None


class StackOutputs(_Model):
    """The outputs ops uses (all optional here: each command checks what it needs).

    tables: role -> table name; the roles ops reads are `orders` (saga state, key `pk`),
    `events` (the event store), `history` (its read model, key `orderId`).
    queues: name -> work queue (+ its DLQ). dlqs: name -> every other DLQ (rule targets,
    Lambda destinations, stream failures). functions: name -> function name.
    """

    model_config = ConfigDict(extra="ignore")

    bus_name: str | None = None
    bus_arn: str | None = None
    archive_name: str | None = None
    archive_arn: str | None = None
    tables: dict[str, str] = Field(default_factory=dict)
    queues: dict[str, QueueOutput] = Field(default_factory=dict)
    dlqs: dict[str, DlqOutput] = Field(default_factory=dict)
    state_machine_arn: str | None = None
    functions: dict[str, str] = Field(default_factory=dict)
    bucket: str | None = None
    stream: str | None = None
    saga_mode: str | None = None

    # --- what commands need, with errors naming the output ----------------------------

    def require_bus(self, needed_for: str) -> str:
        """The bus name (from busName, or the name in busArn)."""
        if self.bus_name:
            return self.bus_name
        if self.bus_arn:
            return self.bus_arn.rsplit("/", 1)[-1]
        raise MissingOutputError("busName", needed_for)

    def require_archive(self, needed_for: str) -> str:
        if self.archive_name:
            return self.archive_name
        if self.archive_arn:
            return self.archive_arn.rsplit("/", 1)[-1]
        raise MissingOutputError("archiveName", needed_for)

    def require_table(self, role: str, needed_for: str) -> str:
        name = self.tables.get(role)
        if not name:
            raise MissingOutputError(f"tables.{role}", needed_for)
        return name

    def all_dlqs(self) -> list[NamedDlq]:
        """Every DLQ the outputs name: the work queues' (named `<queue>`, kind "queue",
        source the queue) and the others, each URL once, sorted by name."""
        found: dict[str, NamedDlq] = {}
        for name, queue in self.queues.items():
            if queue.dlq_url and queue.dlq_url not in found:
                found[queue.dlq_url] = NamedDlq(
                    f"{name}-dlq", queue.dlq_url, queue.dlq_arn, "queue", queue.url
                )
        for name, dlq in self.dlqs.items():
            if dlq.url not in found:
                found[dlq.url] = NamedDlq(name, dlq.url, dlq.arn, dlq.kind, dlq.source)
        return sorted(found.values(), key=lambda d: d.name)

    def find_dlq(self, ref: str) -> NamedDlq | None:
        """The DLQ named `ref` (its output name, queue name, URL or ARN), if the outputs
        list it."""
        for dlq in self.all_dlqs():
            if ref in (dlq.name, dlq.url, dlq.arn) or dlq.url.rsplit("/", 1)[-1] == ref:
                return dlq
        return None

    def find_queue_url(self, ref: str) -> str | None:
        """The URL of the work queue or DLQ named `ref` (output name, queue name, URL or
        ARN), if the outputs list it."""
        for name, queue in self.queues.items():
            if ref in (name, queue.url, queue.arn) or queue.url.rsplit("/", 1)[-1] == ref:
                return queue.url
        dlq = self.find_dlq(ref)
        return dlq.url if dlq else None


# --- loading ------------------------------------------------------------------------

Runner = Callable[[Sequence[str]], "subprocess.CompletedProcess[str]"]


def _run(argv: Sequence[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # noqa: S603 (argv is fixed but for the stack name)
        list(argv),
        capture_output=True,
        text=True,
        timeout=PULUMI_TIMEOUT_SECONDS,
        check=False,
    )


def parse(raw: Any, *, origin: str) -> StackOutputs:
    """Validate raw outputs (the JSON object `pulumi stack output --json` prints)."""
    if not isinstance(raw, Mapping):
        raise UsageError(
            f"{origin}: the stack outputs must be a JSON object (the output of "
            f"`pulumi stack output --json`), got {type(raw).__name__}"
        )
    try:
        return StackOutputs.model_validate(dict(raw))
    except ValidationError as exc:
        error = exc.errors()[0]
        where = ".".join(str(part) for part in error["loc"])
        raise UsageError(
            f"{origin}: output `{where}` is not valid: {error['msg']} "
            f"({exc.error_count()} error(s)); check the program's exports"
        ) from exc


def load_file(path: Path) -> StackOutputs:
    text = read_text(
        path,
        "the stack outputs file",
        ". Write it with `pulumi stack output --json --stack NAME > FILE`",
    )
    raw = parse_json(text, str(path), " (expected `pulumi stack output --json`)")
    return parse(raw, origin=str(path))


def load_stack(
    stack: str, *, runner: Runner = _run, which: Callable[[str], str | None] = shutil.which
) -> StackOutputs:
    """The outputs of `stack` from the Pulumi CLI."""
    pulumi = which("pulumi")
    if pulumi is None:
        raise UsageError(
            f"--stack {stack}: the Pulumi CLI is not on PATH. Save the outputs where it is "
            f"(`pulumi stack output --json --stack {stack} > outputs.json`) and pass "
            "--outputs outputs.json"
        )
    argv = [pulumi, "stack", "output", "--json", "--stack", stack]
    try:
        done = runner(argv)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise UsageError(f"`{' '.join(argv[1:])}` could not run: {exc}") from exc
    if done.returncode != 0:
        raise UsageError(
            f"`pulumi {' '.join(argv[1:])}` failed (exit {done.returncode}): "
            f"{done.stderr.strip() or done.stdout.strip()}"
        )
    try:
        raw = json.loads(done.stdout)
    except ValueError as exc:
        raise UsageError(f"`pulumi stack output --json` printed no JSON: {exc}") from exc
    return parse(raw, origin=f"stack {stack}")


def load(*, outputs_file: str | None, stack: str | None, runner: Runner = _run) -> StackOutputs:
    """The outputs from `--outputs FILE` or `--stack NAME` (one of them is required)."""
    if outputs_file and stack:
        raise UsageError("pass either --outputs FILE or --stack NAME, not both")
    if outputs_file:
        return load_file(Path(outputs_file))
    if stack:
        return load_stack(stack, runner=runner)
    raise UsageError(
        "this command needs the stack's outputs: pass --stack NAME (runs `pulumi stack "
        "output --json`) or --outputs FILE (that JSON saved to a file)"
    )
