"""order_status: the read model query, an order's status by its id.

Entry `handler(event, context)`:
- invoked directly with `{"orderId": "..."}` -> `{"found": true, "order": {...}}` with
  the status, whether it is final, the amounts (total, charged, refunded), the failure
  (step, reason), the shipment and the history of saga steps (event, eventId, when,
  status after it); or `{"found": false, "orderId": ..., "message": ...}`;
- behind API Gateway / a function URL (`GET /orders/{orderId}` path parameter, or
  `?orderId=`) -> 200 with the order, 404 with the not-found answer, 400 without an id.

Read-only (GetItem, strongly consistent: a client that just placed an order sees it).
The saga state it reads is written by place_order, saga_progress and the orchestration
tasks (`domain.orders.to_record`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Final

from domain import orders
from eventcraft import dynamodb
from eventcraft.settings import env

ACCESS: dict[str, frozenset[str]] = {
    "ORDERS_TABLE": frozenset({"dynamodb:GetItem"}),
}

ORDERS_TABLE_ENV: Final = "ORDERS_TABLE"


class InvalidQueryError(ValueError):
    """The query names no order. Send {"orderId": "..."}."""


def _table() -> str:
    return env(
        ORDERS_TABLE_ENV,
        "the function's component must set it (and grant dynamodb:GetItem on the table)",
    )


def get_order(order_id: str) -> dict[str, Any]:
    """The order's status view, or a not-found answer (never an exception for an unknown
    id: "no such order" is an answer)."""
    record = dynamodb.get(_table(), {"pk": orders.order_key(order_id)})
    if record is None:
        return {
            "found": False,
            "orderId": order_id,
            "message": f"no order {order_id}: check the id returned when it was placed",
        }
    return {"found": True, "order": orders.view(orders.from_record(record))}


def _order_id(event: Mapping[str, Any]) -> str | None:
    for source in (
        event,
        event.get("pathParameters") or {},
        event.get("queryStringParameters") or {},
    ):
        value = source.get("orderId") if isinstance(source, Mapping) else None
        if isinstance(value, str) and value.strip():
            return value.strip()
    return None


def _http(status: int, body: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "statusCode": status,
        "headers": {"content-type": "application/json"},
        "body": json.dumps(body),
    }


def handler(event: Mapping[str, Any], context: Any) -> dict[str, Any]:
    """`{"orderId": ...}` directly, or an HTTP request (see the module doc)."""
    http = "requestContext" in event
    order_id = _order_id(event)
    if order_id is None:
        message = 'no orderId: send {"orderId": "<id>"} (or GET /orders/{orderId})'
        if http:
            return _http(400, {"error": "InvalidQuery", "message": message})
        raise InvalidQueryError(message)
    answer = get_order(order_id)
    return _http(200 if answer["found"] else 404, answer) if http else answer
