"""Placing an order: the order and its OrderPlaced event written in ONE DynamoDB
transaction (the outbox relay publishes the event), once per client request.

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

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from pydantic import ValidationError

from contracts import utc_now
from domain import orders
from domain.orders import PlaceOrderRequest
from eventcraft import dynamodb, outbox
from eventcraft.settings import env
from saga.store import ORDERS_TABLE_ENV, OUTBOX_TABLE_ENV

MAX_ATTEMPTS: Final = 3


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
