"""place_order: a client places an order; the order and its OrderPlaced event are written
in ONE DynamoDB transaction (the outbox relay publishes the event).

Entry `handler(event, context)`:
- invoked directly (SDK `Invoke`, the sandbox, a test) with the request as the payload
  (`domain.orders.PlaceOrderRequest`, camelCase):
      {"clientRequestId": "r-1", "customerId": "c-1", "currency": "USD",
       "items": [{"sku": "sku-red-mug", "quantity": 2, "unitPriceCents": 1250}]}
  -> {"orderId": ..., "status": "PLACED", "created": true, "totalCents": 2500,
      "currency": "USD"}; an invalid request (a payload that is not an object included)
  raises InvalidOrderError naming each refused field and what it allows, a reused
  request id RequestIdReusedError;
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


def _is_http(event: Any) -> bool:
    return isinstance(event, Mapping) and "requestContext" in event and "body" in event


def _http(status: int, body: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "statusCode": status,
        "headers": {"content-type": "application/json"},
        "body": json.dumps(body),
    }


def _http_payload(event: Mapping[str, Any]) -> Any:
    """The request in the body (anything but an object is left to parse_request to
    refuse), with the Idempotency-Key header as clientRequestId when the body has none."""
    raw = event.get("body") or ""
    try:
        if event.get("isBase64Encoded"):
            raw = base64.b64decode(raw, validate=True).decode()
        payload = json.loads(raw)
    except ValueError as exc:  # binascii.Error, UnicodeDecodeError, JSONDecodeError
        raise InvalidOrderError(f"the body is not JSON ({exc}): send a UTF-8 JSON object") from exc
    if not isinstance(payload, dict):
        return payload
    headers = {str(k).lower(): v for k, v in (event.get("headers") or {}).items()}
    if "clientRequestId" not in payload and headers.get(IDEMPOTENCY_HEADER):
        payload["clientRequestId"] = headers[IDEMPOTENCY_HEADER]
    return payload


def handler(event: Any, context: Any) -> dict[str, Any]:
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
