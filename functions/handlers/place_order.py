"""place_order: a client places an order; the order and its OrderPlaced event are written
in ONE DynamoDB transaction (the outbox relay publishes the event).

Entry `handler(event, context)`:
- invoked directly (SDK `Invoke`, the sandbox, a test) with the request as the payload
  (`domain.orders.PlaceOrderRequest`, camelCase):
      {"clientRequestId": "r-1", "customerId": "c-1", "currency": "USD",
       "items": [{"sku": "sku-red-mug", "quantity": 2, "unitPriceCents": 1250}]}
  -> {"orderId": ..., "status": "PLACED", "created": true, "totalCents": 2500,
      "currency": "USD"}; an invalid request raises InvalidOrderError, a reused request
  id RequestIdReusedError;
- behind API Gateway (REST or HTTP API) or a function URL (`body` + `requestContext`):
  the same JSON as the body (`clientRequestId` may come as the `Idempotency-Key`
  header instead) -> 201 created / 200 already placed / 400 invalid / 409 id reused.

The use case, once per (customer, clientRequestId): `saga.placing.place_order`.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from typing import Any, Final

from saga.placing import InvalidOrderError, RequestIdReusedError, parse_request, place_order

ACCESS: dict[str, frozenset[str]] = {
    # PutItem: the request record and the order (transaction); GetItem: answer a retry.
    "ORDERS_TABLE": frozenset({"dynamodb:PutItem", "dynamodb:GetItem"}),
    "OUTBOX_TABLE": frozenset({"dynamodb:PutItem"}),
}

IDEMPOTENCY_HEADER: Final = "idempotency-key"


def _is_http(event: Mapping[str, Any]) -> bool:
    return "requestContext" in event and "body" in event


def _http(status: int, body: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "statusCode": status,
        "headers": {"content-type": "application/json"},
        "body": json.dumps(body),
    }


def _http_payload(event: Mapping[str, Any]) -> dict[str, Any]:
    raw = event.get("body") or ""
    if event.get("isBase64Encoded"):
        raw = base64.b64decode(raw).decode()
    try:
        payload = json.loads(raw)
    except ValueError as exc:
        raise InvalidOrderError(f"the body is not JSON ({exc})") from exc
    if not isinstance(payload, dict):
        raise InvalidOrderError("the body must be a JSON object")
    headers = {str(k).lower(): v for k, v in (event.get("headers") or {}).items()}
    if "clientRequestId" not in payload and headers.get(IDEMPOTENCY_HEADER):
        payload["clientRequestId"] = headers[IDEMPOTENCY_HEADER]
    return payload


def handler(event: Mapping[str, Any], context: Any) -> dict[str, Any]:
    """A direct invocation (the request as payload) or an HTTP request (see module doc)."""
    if not _is_http(event):
        return place_order(parse_request(event)).to_response()
    try:
        placed = place_order(parse_request(_http_payload(event)))
    except InvalidOrderError as exc:
        return _http(400, {"error": "InvalidOrder", "message": str(exc)})
    except RequestIdReusedError as exc:
        return _http(409, {"error": "RequestIdReused", "message": str(exc)})
    return _http(201 if placed.created else 200, placed.to_response())
