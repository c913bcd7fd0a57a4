"""`order show ORDER_ID`: one order's saga state, its history, and its execution.

Read from (each part is optional but the first; a part whose output is missing is
skipped with a note):
- the orders table (`tables.orders`, item `order#<id>`): the saga state, as
  `order_status` answers it (`domain.orders.view`): status, amounts, failure, the
  saga's applied facts;
- the event store (`tables.events`, aggregate id = order id): every event recorded for
  the order, in order (`eventcraft.eventstore.DynamoDBEventRecorder.read`);
- the read model (`tables.history`, key `orderId`): the projected view and the version
  it has folded in, compared with the event store (a projection behind the store is
  reported as lag);
- in orchestration mode (`stateMachineArn`): the Step Functions executions of the order,
  found among the newest `max_executions` executions by name (contains the order id)
  or input (an `orderId` anywhere in its first levels), with the status and the last
  events of the newest one.

All reads are strongly consistent where DynamoDB allows; nothing is written.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Final

from botocore.exceptions import BotoCoreError, ClientError

from domain import orders
from eventcraft.eventstore import DynamoDBEventRecorder, DynamoDBReadModel
from handlers.project_order_history import KEY_ATTRIBUTE as HISTORY_KEY
from ops.aws import Clients, describe_aws_error, error_code
from ops.errors import EXIT_FAILED, UsageError
from ops.outputs import StackOutputs
from ops.render import fields, iso, table
from ops.result import Result

if TYPE_CHECKING:
    from mypy_boto3_stepfunctions.type_defs import HistoryEventTypeDef

DEFAULT_MAX_EXECUTIONS: Final = 200
DEFAULT_LAST_EVENTS: Final = 10
ORDER_ID_DEPTH: Final = 3


def _saga(clients: Clients, table_name: str, order_id: str) -> dict[str, Any]:
    try:
        item = clients.dynamodb.get_item(
            TableName=table_name,
            Key={"pk": {"S": orders.order_key(order_id)}},
            ConsistentRead=True,
        ).get("Item")
    except (ClientError, BotoCoreError) as exc:
        raise describe_aws_error(exc, f"GetItem {table_name}") from exc
    if item is None:
        return {"found": False}
    from boto3.dynamodb.types import TypeDeserializer

    deserializer = TypeDeserializer()
    record = {key: deserializer.deserialize(value) for key, value in item.items()}
    try:
        state = orders.from_record(record)
    except orders.CorruptRecordError as exc:
        return {"found": True, "error": str(exc)}
    return {"found": True, "version": state.version, **orders.view(state)}


def _events(clients: Clients, table_name: str, order_id: str) -> list[dict[str, Any]]:
    recorder = DynamoDBEventRecorder(table_name, client=clients.dynamodb)
    try:
        return [
            {
                "version": event.version,
                "type": event.type,
                "occurredAt": event.occurred_at,
                "eventId": event.event_id,
                "schemaVersion": event.schema_version,
            }
            for event in recorder.read(order_id)
        ]
    except (ClientError, BotoCoreError) as exc:
        raise describe_aws_error(exc, f"Query {table_name}") from exc


def _read_model(clients: Clients, table_name: str, order_id: str) -> dict[str, Any]:
    model = DynamoDBReadModel(table_name, key_attribute=HISTORY_KEY, client=clients.dynamodb)
    try:
        view, version = model.get(order_id)
    except (ClientError, BotoCoreError) as exc:
        raise describe_aws_error(exc, f"GetItem {table_name}") from exc
    if view is None:
        return {"found": False, "version": 0}
    return {"found": True, "version": version, "view": view}


def _mentions(value: Any, order_id: str, depth: int = ORDER_ID_DEPTH) -> bool:
    """Whether `value` has `orderId == order_id` in its first `depth` levels."""
    if isinstance(value, Mapping):
        if value.get("orderId") == order_id:
            return True
        return depth > 1 and any(_mentions(v, order_id, depth - 1) for v in value.values())
    if isinstance(value, list):
        return depth > 1 and any(_mentions(v, order_id, depth - 1) for v in value)
    return False


def _details(event: HistoryEventTypeDef) -> dict[str, Any]:
    """The state name, error and cause of a history event, whichever it has."""
    found: dict[str, Any] = {}
    for key, value in event.items():
        if key.endswith("EventDetails") and isinstance(value, Mapping):
            for name in ("name", "error", "cause", "resource"):
                if value.get(name):
                    found[name] = value[name]
    return found


def _executions(
    clients: Clients, machine_arn: str, order_id: str, *, max_executions: int, last_events: int
) -> dict[str, Any]:
    sfn = clients.sfn
    matches: list[dict[str, Any]] = []
    scanned = 0
    try:
        paginator = sfn.get_paginator("list_executions")
        for page in paginator.paginate(stateMachineArn=machine_arn):
            for listed in page.get("executions", []):
                if scanned >= max_executions:
                    break
                scanned += 1
                described = sfn.describe_execution(executionArn=listed["executionArn"])
                try:
                    payload = json.loads(described.get("input") or "null")
                except ValueError:
                    payload = None
                if order_id in listed["name"] or _mentions(payload, order_id):
                    matches.append(
                        {
                            "name": listed["name"],
                            "executionArn": listed["executionArn"],
                            "status": described["status"],
                            "startDate": iso(described["startDate"]),
                            "stopDate": iso(described["stopDate"])
                            if described.get("stopDate")
                            else None,
                            "error": described.get("error"),
                            "cause": described.get("cause"),
                        }
                    )
            if scanned >= max_executions:
                break
        history: list[dict[str, Any]] = []
        if matches:
            newest = max(matches, key=lambda m: m["startDate"])
            events = sfn.get_execution_history(
                executionArn=newest["executionArn"], reverseOrder=True, maxResults=last_events
            ).get("events", [])
            history = [
                {
                    "id": event["id"],
                    "type": event["type"],
                    "timestamp": iso(event["timestamp"]),
                    **_details(event),
                }
                # Oldest first; sorted and cut here too, as emulators may ignore the
                # request's order and limit.
                for event in sorted(events, key=lambda e: e["id"])[-last_events:]
            ]
    except ClientError as exc:
        if error_code(exc) == "StateMachineDoesNotExist":
            raise UsageError(
                f"state machine {machine_arn} (output stateMachineArn) does not exist"
            ) from exc
        raise describe_aws_error(exc, "Step Functions") from exc
    except BotoCoreError as exc:
        raise describe_aws_error(exc, "Step Functions") from exc
    return {
        "stateMachineArn": machine_arn,
        "scanned": scanned,
        "complete": scanned < max_executions,
        "executions": sorted(matches, key=lambda m: m["startDate"], reverse=True),
        "lastEvents": history,
    }


def show(
    clients: Clients,
    outputs: StackOutputs,
    order_id: str,
    *,
    max_executions: int = DEFAULT_MAX_EXECUTIONS,
    last_events: int = DEFAULT_LAST_EVENTS,
) -> Result:
    """The order's saga state, event history, read model and execution (module doc)."""
    order_id = order_id.strip()
    if not order_id:
        raise UsageError("ORDER_ID is empty")
    if max_executions < 1 or not 1 <= last_events <= 1000:
        raise UsageError("--max-executions must be >= 1 and --last-events 1..1000")
    orders_table = outputs.require_table("orders", "the orders table holds the saga state")
    notes: list[str] = []
    data: dict[str, Any] = {"orderId": order_id, "saga": _saga(clients, orders_table, order_id)}
    events_table = outputs.tables.get("events")
    if events_table:
        data["events"] = _events(clients, events_table, order_id)
    else:
        data["events"] = None
        notes.append("no `tables.events` output: event store history skipped")
    history_table = outputs.tables.get("history")
    if history_table:
        read_model = _read_model(clients, history_table, order_id)
        stored = len(data["events"]) if data["events"] is not None else None
        read_model["lag"] = max(0, stored - read_model["version"]) if stored is not None else None
        data["readModel"] = read_model
    else:
        data["readModel"] = None
        notes.append("no `tables.history` output: read model skipped")
    if outputs.state_machine_arn and outputs.saga_mode != "choreography":
        data["stepFunctions"] = _executions(
            clients,
            outputs.state_machine_arn,
            order_id,
            max_executions=max_executions,
            last_events=last_events,
        )
    else:
        data["stepFunctions"] = None
    data["notes"] = notes
    found = (
        data["saga"]["found"]
        or bool(data["events"])
        or bool(data["readModel"] and data["readModel"]["found"])
        or bool(data["stepFunctions"] and data["stepFunctions"]["executions"])
    )
    data["found"] = found
    if not found:
        return Result(
            data,
            f"no order {order_id}: not in the orders table, the event store, the read model "
            "or the state machine's executions; check the id returned when it was placed",
            EXIT_FAILED,
        )
    return Result(data, _text(data))


def _cents(value: Any, currency: Any) -> str:
    return f"{int(value) / 100:.2f} {currency}" if isinstance(value, int) else "-"


def _text(data: dict[str, Any]) -> str:
    parts: list[str] = []
    saga = data["saga"]
    if not saga["found"]:
        parts.append(f"order {data['orderId']}: not in the orders table")
    elif "error" in saga:
        parts.append(f"order {data['orderId']}: unreadable saga record: {saga['error']}")
    else:
        currency = saga["currency"]
        parts.append(
            fields(
                {
                    "order": saga["orderId"],
                    "status": saga["status"] + (" (final)" if saga["final"] else ""),
                    "customer": saga["customerId"],
                    "total": _cents(saga["totalCents"], currency),
                    "charged": _cents(saga["chargedCents"], currency),
                    "refunded": _cents(saga["refundedCents"], currency),
                    "failed step": saga["failedStep"],
                    "failure": saga["failureReason"],
                    "reservation": saga["reservationId"],
                    "payment": saga["paymentId"],
                    "shipment": (saga["shipment"] or {}).get("trackingNumber"),
                    "placed": saga["placedAt"],
                    "closed": saga["closedAt"],
                }
            )
        )
        parts.append(
            "saga steps (orders table)\n"
            + table(
                ["event", "status after", "occurred", "eventId"],
                [(h["event"], h["status"], h["occurredAt"], h["eventId"]) for h in saga["history"]],
            )
        )
    if data["events"] is not None:
        parts.append(
            f"event store ({len(data['events'])} events)\n"
            + table(
                ["#", "type", "occurred", "eventId"],
                [(e["version"], e["type"], e["occurredAt"], e["eventId"]) for e in data["events"]],
            )
        )
    model = data["readModel"]
    if model is not None:
        if not model["found"]:
            parts.append("read model: no row")
        else:
            lag = model["lag"]
            sync = "in sync with the event store" if not lag else f"{lag} event(s) behind the store"
            parts.append(
                f"read model: status {model['view'].get('status')}, version {model['version']} "
                f"({sync})"
            )
    sfn = data["stepFunctions"]
    if sfn is not None:
        scope = (
            f"searched all {sfn['scanned']}"
            if sfn["complete"]
            else f"searched the newest {sfn['scanned']} (--max-executions)"
        )
        if not sfn["executions"]:
            parts.append(f"step functions: no execution for this order ({scope})")
        else:
            parts.append(
                f"step functions executions ({scope})\n"
                + table(
                    ["name", "status", "started", "stopped", "error"],
                    [
                        (e["name"], e["status"], e["startDate"], e["stopDate"], e["error"])
                        for e in sfn["executions"]
                    ],
                )
            )
            parts.append(
                "last events of the newest execution\n"
                + table(
                    ["id", "type", "state", "time", "error"],
                    [
                        (e["id"], e["type"], e.get("name"), e["timestamp"], e.get("error"))
                        for e in sfn["lastEvents"]
                    ],
                )
            )
    parts += [f"note: {note}" for note in data["notes"]]
    return "\n\n".join(parts)
