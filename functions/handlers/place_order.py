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

Application function for other entries (e.g. the bulk import): `place_order(request)`.

Idempotency: a conditional write, not Powertools. The transaction writes a request record
`request#<customerId>#<clientRequestId>` only if absent, with the order and the outbox
row: the same request twice places one order (the second finds the record and answers
with the first order's id), and a crash between "written" and "answered" cannot leave an
order without its event or an event without its order. Powertools would key on the same
request id but keep its record in another table, outside the transaction.

Orders table (`ORDERS_TABLE`, key `pk` S): `order#<orderId>` (the order and its saga
state, `domain.orders.to_record`), `request#<customerId>#<clientRequestId>` (`orderId`,
`fingerprint` of the customer + lines + currency, `createdAt`).
"""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from pydantic import ValidationError

from contracts import utc_now
from domain import orders
from domain.orders import PlaceOrderRequest
from eventkit import dynamodb, outbox
from handlers.saga_progress import ConfigurationError, env

ACCESS: dict[str, frozenset[str]] = {
    # PutItem: the request record and the order (transaction); GetItem: answer a retry.
    "ORDERS_TABLE": frozenset({"dynamodb:PutItem", "dynamodb:GetItem"}),
    "OUTBOX_TABLE": frozenset({"dynamodb:PutItem"}),
}

ORDERS_TABLE_ENV: Final = "ORDERS_TABLE"
OUTBOX_TABLE_ENV: Final = "OUTBOX_TABLE"
IDEMPOTENCY_HEADER: Final = "idempotency-key"
MAX_ATTEMPTS: Final = 3

__all__ = [
    "ACCESS",
    "ConfigurationError",
    "InvalidOrderError",
    "PlaceOrderRequest",
    "PlacedOrder",
    "RequestIdReusedError",
    "handler",
    "parse_request",
    "place_order",
]


class InvalidOrderError(ValueError):
    """The request is not a valid order; nothing was written. Fix the request."""


class RequestIdReusedError(ValueError):
    """The clientRequestId was already used by this customer for a different order."""


@dataclass(frozen=True)
class PlacedOrder:
    """The answer: the order's id and whether this request created it (False: a retry
    of a request already placed, answered with the first order)."""

    order_id: str
    status: str
    created: bool
    total_cents: int
    currency: str

    def to_response(self) -> dict[str, Any]:
        return {
            "orderId": self.order_id,
            "status": self.status,
            "created": self.created,
            "totalCents": self.total_cents,
            "currency": self.currency,
        }


def parse_request(payload: Mapping[str, Any]) -> PlaceOrderRequest:
    """Validate a request payload; InvalidOrderError saying what to fix."""
    try:
        return PlaceOrderRequest.model_validate(payload)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(map(str, e['loc'])) or 'request'}: {e['msg']}" for e in exc.errors()
        )
        raise InvalidOrderError(f"invalid order request: {problems}") from exc


def place_order(request: PlaceOrderRequest, *, now: datetime | None = None) -> PlacedOrder:
    """Place the order `request` asks for, once per (customer, clientRequestId)."""
    table = env(ORDERS_TABLE_ENV)
    for attempt in range(1, MAX_ATTEMPTS + 1):
        try:
            return _write(request, table=table, now=now or utc_now())
        except outbox.ConditionFailedError:
            return _already_placed(request, table=table)
        except outbox.TransactionConflictError:
            # The same request, concurrently: the next attempt finds the winner's record.
            if attempt == MAX_ATTEMPTS:
                raise
    raise AssertionError("unreachable")


def _write(request: PlaceOrderRequest, *, table: str, now: datetime) -> PlacedOrder:
    placed = orders.new_order(request, order_id=str(uuid.uuid4()), now=now)
    saga = orders.new_saga(placed, client_request_id=request.client_request_id)
    request_record = outbox.put(
        table,
        {
            "pk": orders.request_key(request.customer_id, request.client_request_id),
            "orderId": placed.order_id,
            "customerId": request.customer_id,
            "clientRequestId": request.client_request_id,
            "fingerprint": orders.fingerprint(request),
            "createdAt": now.isoformat(),
        },
        condition="attribute_not_exists(pk)",
    )
    order = outbox.put(
        table,
        {"pk": orders.order_key(placed.order_id), **orders.to_record(saga)},
        condition="attribute_not_exists(pk)",
    )
    outbox.write([request_record, order], [placed], outbox_table=env(OUTBOX_TABLE_ENV))
    return PlacedOrder(
        placed.order_id, saga.status.value, True, placed.total_cents, placed.currency
    )


def _already_placed(request: PlaceOrderRequest, *, table: str) -> PlacedOrder:
    existing = dynamodb.get(
        table, {"pk": orders.request_key(request.customer_id, request.client_request_id)}
    )
    if existing is None:
        raise RuntimeError(
            f"the order transaction failed its condition but no request record exists for "
            f"{request.client_request_id!r}: an order id collided; retry the request"
        )
    if existing.get("fingerprint") != orders.fingerprint(request):
        raise RequestIdReusedError(
            f"clientRequestId {request.client_request_id!r} was already used by customer "
            f"{request.customer_id} for order {existing['orderId']} with other lines: use a "
            "new clientRequestId for a new order"
        )
    order_id = str(existing["orderId"])
    order = dynamodb.get(table, {"pk": orders.order_key(order_id)})
    state = orders.from_record(order) if order is not None else None
    return PlacedOrder(
        order_id,
        state.status.value if state else orders.OrderStatus.PLACED.value,
        False,
        state.total_cents if state else orders.line_total(request.items),
        state.currency if state else (request.currency or ""),
    )


# --- entry ------------------------------------------------------------------------------


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
