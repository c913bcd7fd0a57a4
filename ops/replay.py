"""`replay start` and `replay watch`: re-send archived events of a time window to the bus.

`start` checks everything it can before calling StartReplay: the window (from < to,
not in the future), the archive (exists, its retention and creation time cover the
window), the destination (the archive's own bus, the only one EventBridge replays to),
and the rules (each exists on the bus; they become the replay's FilterArns, so only
their targets receive the replayed events). Replayed events carry `replay-name`; the
archive's own rule skips them, so a replay is never archived again.

`watch` polls DescribeReplay until the replay is COMPLETED, FAILED or CANCELLED, at most
`timeout` seconds, reporting progress as the share of the window replayed so far
(`EventLastReplayedTime`).

Emulators: moto ignores the window and FilterArns (it replays the whole archive to
every rule, synchronously); the sandbox (`eventcraft_sandbox.delivery.eventbridge`) honours both.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Final

from botocore.exceptions import BotoCoreError, ClientError

from ops.aws import Clients, describe_aws_error, error_code
from ops.errors import EXIT_FAILED, OpsError, UsageError
from ops.outputs import StackOutputs
from ops.render import duration, fields, iso
from ops.result import Result

if TYPE_CHECKING:
    from mypy_boto3_events.type_defs import ReplayDestinationTypeDef

FINAL_STATES: Final = frozenset({"COMPLETED", "FAILED", "CANCELLED"})
REPLAY_NAME: Final = re.compile(r"[.\-_A-Za-z0-9]{1,64}")
RULE_ARN: Final = re.compile(
    r"arn:aws[a-z-]*:events:[a-z0-9-]+:\d{12}:rule/(?:(?P<bus>.+)/)?(?P<name>[^/]+)"
)
# Archives refuse replays in these states (nothing archived yet, or broken).
UNUSABLE_ARCHIVE_STATES: Final = frozenset({"CREATING", "CREATE_FAILED"})
CLOCK_SKEW: Final = timedelta(minutes=5)
DEFAULT_INTERVAL_SECONDS: Final = 5.0
DEFAULT_TIMEOUT_SECONDS: Final = 900.0


def parse_time(text: str, option: str, *, now: datetime) -> datetime:
    """An ISO 8601 time (`2025-01-15T10:30:00Z`, `2025-01-15T10:30+02:00`; without an
    offset: UTC), or `now`."""
    if text.strip().lower() == "now":
        return now
    try:
        value = datetime.fromisoformat(text.strip().replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise UsageError(
            f"{option} {text!r} is not an ISO 8601 time: write e.g. 2025-01-15T10:30:00Z "
            "(no offset means UTC) or `now`"
        ) from None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def default_name(start: datetime, now: datetime) -> str:
    return f"ops-{start:%Y%m%dT%H%M}-{now:%Y%m%dT%H%M%S}"


def _as_utc(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    if isinstance(value, int | float):
        return datetime.fromtimestamp(value, UTC)
    return None


def _archive(clients: Clients, name: str) -> dict[str, Any]:
    try:
        archive: dict[str, Any] = dict(clients.events.describe_archive(ArchiveName=name))
    except ClientError as exc:
        if error_code(exc) == "ResourceNotFoundException":
            raise UsageError(
                f"archive {name!r} (output archiveName) does not exist: was the stack "
                "deployed with its archive, in this account and region?"
            ) from exc
        raise describe_aws_error(exc, f"DescribeArchive {name}") from exc
    except BotoCoreError as exc:
        raise describe_aws_error(exc, f"DescribeArchive {name}") from exc
    return archive


def _rule_arns(clients: Clients, bus: str, rules: Sequence[str]) -> list[str]:
    """The ARNs of `rules` (names or ARNs), each checked to exist on `bus`."""
    arns: list[str] = []
    for rule in rules:
        match = RULE_ARN.fullmatch(rule)
        name = match.group("name") if match else rule
        rule_bus = (match.group("bus") or "default") if match else bus
        if rule_bus != bus:
            raise UsageError(
                f"--rules {rule}: the rule is on bus {rule_bus!r}, the replay goes to {bus!r}; "
                "a replay can only filter on rules of its destination bus"
            )
        try:
            arns.append(clients.events.describe_rule(Name=name, EventBusName=bus)["Arn"])
        except ClientError as exc:
            if error_code(exc) != "ResourceNotFoundException":
                raise describe_aws_error(exc, f"DescribeRule {name}") from exc
            known = [
                r["Name"]
                for r in clients.events.list_rules(EventBusName=bus, Limit=100).get("Rules", [])
                if not r["Name"].startswith("Events-Archive-")
            ]
            raise UsageError(
                f"--rules: no rule {name!r} on bus {bus!r} (its rules: "
                f"{', '.join(sorted(known)) or 'none'})"
            ) from exc
    return arns


def _window(start_text: str, end_text: str, now: datetime) -> tuple[datetime, datetime]:
    window_start = parse_time(start_text, "--from", now=now)
    window_end = parse_time(end_text, "--to", now=now)
    if window_start >= window_end:
        raise UsageError(
            f"--from {iso(window_start)} is not before --to {iso(window_end)}: the window "
            "must start before it ends"
        )
    if window_end > now + CLOCK_SKEW:
        raise UsageError(
            f"--to {iso(window_end)} is in the future: only events archived by now can be "
            "replayed; use --to now"
        )
    return window_start, window_end


def _check_archive(
    name: str, archive: dict[str, Any], window: tuple[datetime, datetime], now: datetime
) -> list[str]:
    """Refuse a window the archive cannot serve; return notes on the rest."""
    window_start, window_end = window
    state = str(archive.get("State", ""))
    if state in UNUSABLE_ARCHIVE_STATES:
        reason = f" ({archive['StateReason']})" if archive.get("StateReason") else ""
        raise OpsError(f"archive {name} is {state}: it cannot be replayed from{reason}")
    retention = int(archive.get("RetentionDays") or 0)  # 0: kept forever
    if retention > 0 and window_start < (oldest := now - timedelta(days=retention)):
        raise UsageError(
            f"--from {iso(window_start)} is outside the archive's retention: {name} keeps "
            f"events {retention} days, so nothing before {iso(oldest)} is left; use --from "
            f"{iso(oldest)} or later"
        )
    notes: list[str] = []
    created = _as_utc(archive.get("CreationTime"))
    if created is not None:
        if window_end <= created:
            raise UsageError(
                f"the window ends at {iso(window_end)}, before archive {name} was created "
                f"({iso(created)}): it holds no events that old"
            )
        if window_start < created:
            notes.append(
                f"the archive was created at {iso(created)}: nothing before that is replayed"
            )
    return notes


def start(
    clients: Clients,
    outputs: StackOutputs,
    *,
    start_text: str,
    end_text: str,
    rules: Sequence[str] = (),
    name: str | None = None,
    now: datetime | None = None,
) -> Result:
    """Validate the window and start the replay (see the module doc)."""
    now = now or datetime.now(UTC)
    window_start, window_end = _window(start_text, end_text, now)
    replay_name = name or default_name(window_start, now)
    if not REPLAY_NAME.fullmatch(replay_name):
        raise UsageError(
            f"--name {replay_name!r}: a replay name is 1 to 64 letters, digits, '.', '-' or '_'"
        )
    archive_name = outputs.require_archive("the archive to replay from")
    archive = _archive(clients, archive_name)
    notes = _check_archive(archive_name, archive, (window_start, window_end), now)
    bus_arn = str(archive.get("EventSourceArn", ""))
    if not bus_arn:
        raise OpsError(f"archive {archive_name} names no source bus (EventSourceArn)")
    if outputs.bus_arn and bus_arn != outputs.bus_arn:
        raise UsageError(
            f"archive {archive_name} archives bus {bus_arn}, not the stack's bus "
            f"{outputs.bus_arn}: EventBridge replays only to an archive's own bus"
        )
    bus_name = bus_arn.rsplit("/", 1)[-1]
    filter_arns = _rule_arns(clients, bus_name, rules)
    destination: ReplayDestinationTypeDef = {"Arn": bus_arn}
    if filter_arns:
        destination["FilterArns"] = filter_arns
    try:
        response = clients.events.start_replay(
            ReplayName=replay_name,
            Description=f"ops replay {iso(window_start)} .. {iso(window_end)}",
            EventSourceArn=str(archive["ArchiveArn"]),
            EventStartTime=window_start,
            EventEndTime=window_end,
            Destination=destination,
        )
    except ClientError as exc:
        if error_code(exc) == "ResourceAlreadyExistsException":
            raise UsageError(
                f"a replay named {replay_name!r} already exists: pick another --name"
            ) from exc
        raise describe_aws_error(exc, f"StartReplay {replay_name}") from exc
    except BotoCoreError as exc:
        raise describe_aws_error(exc, f"StartReplay {replay_name}") from exc
    data: dict[str, Any] = {
        "replayName": replay_name,
        "replayArn": response.get("ReplayArn"),
        "state": response.get("State"),
        "archive": archive_name,
        "archiveArn": archive["ArchiveArn"],
        "bus": bus_arn,
        "from": iso(window_start),
        "to": iso(window_end),
        "rules": filter_arns,
        "notes": notes,
    }
    text = fields(
        {
            "replay": replay_name,
            "state": data["state"],
            "archive": archive_name,
            "to bus": bus_name,
            "window": f"{data['from']} .. {data['to']}",
            "rules": ", ".join(r.rsplit("/", 1)[-1] for r in filter_arns) or "all rules of the bus",
        }
    )
    text += "".join(f"\nnote: {note}" for note in notes)
    text += f"\nwatch it: python -m ops replay watch {replay_name}"
    return Result(data, text)


def _progress(replay: dict[str, Any]) -> float | None:
    """The share (0..1) of the window replayed so far, if known."""
    start_time = _as_utc(replay.get("EventStartTime"))
    end_time = _as_utc(replay.get("EventEndTime"))
    last = _as_utc(replay.get("EventLastReplayedTime"))
    if replay.get("State") == "COMPLETED":
        return 1.0
    if not (start_time and end_time and last) or end_time <= start_time:
        return None
    return min(1.0, max(0.0, (last - start_time) / (end_time - start_time)))


def _snapshot(replay: dict[str, Any], elapsed: float) -> dict[str, Any]:
    last = _as_utc(replay.get("EventLastReplayedTime"))
    share = _progress(replay)
    return {
        "replayName": replay.get("ReplayName"),
        "state": replay.get("State"),
        "stateReason": replay.get("StateReason"),
        "eventLastReplayedTime": iso(last) if last else None,
        "progress": round(share, 4) if share is not None else None,
        "elapsedSeconds": round(elapsed, 1),
    }


def progress_line(snapshot: dict[str, Any]) -> str:
    share = snapshot["progress"]
    parts = [f"[{duration(snapshot['elapsedSeconds']):>7}] {snapshot['state']}"]
    if snapshot["eventLastReplayedTime"]:
        parts.append(f"last replayed {snapshot['eventLastReplayedTime']}")
    if share is not None:
        parts.append(f"{share:.0%} of the window")
    if snapshot["stateReason"]:
        parts.append(str(snapshot["stateReason"]))
    return "  ".join(parts)


def watch(
    clients: Clients,
    name: str,
    *,
    interval: float = DEFAULT_INTERVAL_SECONDS,
    timeout: float = DEFAULT_TIMEOUT_SECONDS,
    progress: Callable[[str], None] = lambda line: None,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> Result:
    """Poll DescribeReplay every `interval` seconds until a final state or `timeout`
    seconds; report each change of state or progress through `progress`."""
    if interval <= 0 or timeout <= 0:
        raise UsageError("--interval and --timeout are seconds and must be > 0")
    began = clock()
    polls = 0
    last_line: str | None = None
    history: list[dict[str, Any]] = []
    while True:
        try:
            replay = dict(clients.events.describe_replay(ReplayName=name))
        except ClientError as exc:
            if error_code(exc) == "ResourceNotFoundException":
                raise UsageError(
                    f"no replay named {name!r} (replays are listed by `aws events list-replays`)"
                ) from exc
            raise describe_aws_error(exc, f"DescribeReplay {name}") from exc
        except BotoCoreError as exc:
            raise describe_aws_error(exc, f"DescribeReplay {name}") from exc
        polls += 1
        elapsed = clock() - began
        snapshot = _snapshot(replay, elapsed)
        line = progress_line({**snapshot, "elapsedSeconds": 0})
        if line != last_line:
            progress(progress_line(snapshot))
            history.append(snapshot)
            last_line = line
        state = str(replay.get("State"))
        if state in FINAL_STATES:
            data = {**snapshot, "polls": polls, "timedOut": False, "history": history}
            ok = state == "COMPLETED"
            text = f"replay {name} {state}" + (
                f" after {duration(elapsed)}"
                if ok
                else f": {replay.get('StateReason') or 'no reason given'}"
            )
            return Result(data, text, 0 if ok else EXIT_FAILED)
        if elapsed + interval > timeout:
            data = {**snapshot, "polls": polls, "timedOut": True, "history": history}
            text = (
                f"replay {name} is still {state} after {duration(elapsed)} (--timeout "
                f"{timeout:g}s): it goes on; watch again with `python -m ops replay watch {name}`"
            )
            return Result(data, text, EXIT_FAILED)
        sleep(interval)
