"""`events put` and `events sample`: contract-checked test events.

`put` validates the detail against its contract (`contracts.parse_detail`: the current
model of the detail-type, after upcasting an older version) BEFORE anything is sent; a
detail that breaks the contract is refused with the fields named (exit code 2). A
detail without `eventId` / `occurredAt` gets them as a producer would (a new UUID, now):
they are the consumers' idempotency key and the event time. The entry goes out through
`eventcraft.publisher.Publisher`, which checks PutEvents' FailedEntryCount and retries
failed entries: an entry EventBridge refuses fails the command (exit code 1), never
silently. The detail is sent as given (plus the filled fields), so an older version
can be put to test upcasting consumers.

`sample DETAIL_TYPE` prints a valid detail (`contracts.sample_detail`) to start from.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from contracts import REGISTRY, ContractError, model_for, new_event_id, parse_detail, sample_detail
from eventcraft.publisher import Publisher, PublishError
from ops.aws import Clients
from ops.errors import OpsError, UsageError
from ops.inputs import parse_json, read_stdin, read_text
from ops.outputs import StackOutputs
from ops.render import fields
from ops.result import Result

if TYPE_CHECKING:
    from mypy_boto3_events.type_defs import PutEventsRequestEntryTypeDef


def _known() -> str:
    return ", ".join(sorted(REGISTRY))


def read_detail(text: str) -> dict[str, Any]:
    """The detail JSON object: inline, `@FILE`, or `-` (standard input)."""
    origin = "--detail"
    if text == "-":
        origin = "--detail - (stdin)"
        text = read_stdin(origin)
    elif text.startswith("@"):
        path = Path(text[1:])
        text = read_text(path, "the --detail file")
        origin = f"--detail @{path}"
    detail = parse_json(text, origin)
    if not isinstance(detail, dict):
        raise UsageError(
            f"{origin} must be a JSON object (the event's detail), got {type(detail).__name__}"
        )
    return detail


def validation_message(detail_type: str, exc: ValidationError) -> str:
    """Every contract violation, each naming its field (`items.0.quantity: ...`)."""
    lines = []
    for error in exc.errors():
        where = ".".join(str(part) for part in error["loc"]) or "<detail>"
        lines.append(f"  {where}: {error['msg']}")
    return f"the detail is not a valid {detail_type}:\n" + "\n".join(lines)


def validate(detail_type: str, detail: Mapping[str, Any]) -> None:
    """Raise UsageError unless `detail` satisfies the contract of `detail_type`."""
    try:
        parse_detail(detail_type, detail)
    except ValidationError as exc:
        raise UsageError(validation_message(detail_type, exc)) from exc
    except ContractError as exc:
        raise UsageError(str(exc)) from exc


def put(
    clients: Clients,
    outputs: StackOutputs,
    *,
    detail_type: str,
    detail_text: str,
    source: str | None = None,
    now: datetime | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> Result:
    """Validate and put one event on the stack's bus (see the module doc)."""
    try:
        model = model_for(detail_type)
    except ContractError as exc:
        raise UsageError(f"--detail-type {detail_type!r}: {exc}") from exc
    detail = read_detail(detail_text)
    filled: list[str] = []
    if "eventId" not in detail:
        detail["eventId"] = new_event_id()
        filled.append("eventId")
    if "occurredAt" not in detail:
        detail["occurredAt"] = (now or datetime.now(UTC)).isoformat().replace("+00:00", "Z")
        filled.append("occurredAt")
    validate(detail_type, detail)
    warnings: list[str] = []
    event_source = source or model.SOURCE
    if event_source != model.SOURCE:
        warnings.append(
            f"source {event_source!r} is not the contract's {model.SOURCE!r}: rules that "
            "match on the source will not route it"
        )
    bus = outputs.require_bus("the bus to put the event on")
    entry: PutEventsRequestEntryTypeDef = {
        "EventBusName": bus,
        "Source": event_source,
        "DetailType": detail_type,
        "Detail": json.dumps(detail, separators=(",", ":")),
    }
    # Event time, as producers send it; unparsable here: EventBridge stamps the put time.
    with contextlib.suppress(ValueError):
        entry["Time"] = datetime.fromisoformat(str(detail["occurredAt"]).replace("Z", "+00:00"))
    publisher = Publisher(bus, client=clients.events, sleep=sleep)
    try:
        [event_id] = publisher.put_entries([entry])
    except PublishError as exc:
        raise OpsError(f"EventBridge did not accept the event: {exc}") from exc
    data = {
        "bus": bus,
        "id": event_id,
        "detailType": detail_type,
        "source": event_source,
        "eventId": detail["eventId"],
        "orderId": detail.get("orderId"),
        "filled": filled,
        "warnings": warnings,
    }
    text = fields(
        {
            "put on": bus,
            "EventBridge id": event_id,
            "detail-type": detail_type,
            "source": event_source,
            "eventId": detail["eventId"],
            "orderId": detail.get("orderId"),
        }
    )
    if filled:
        text += f"\nfilled in: {', '.join(filled)} (as a producer would)"
    text += "".join(f"\nwarning: {w}" for w in warnings)
    return Result(data, text)


def sample(detail_type: str) -> Result:
    """A valid detail of `detail_type` (its current version)."""
    if detail_type not in REGISTRY:
        raise UsageError(f"no contract for detail-type {detail_type!r} (known: {_known()})")
    detail = sample_detail(detail_type)
    return Result(detail, json.dumps(detail, indent=2))
