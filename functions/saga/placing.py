"""Placing an order: the order and its OrderPlaced event written in ONE DynamoDB
transaction (the outbox relay publishes the event), once per client request.

Idempotency: a conditional write, not Powertools. The transaction writes a request record
`request#<customerId>#<clientRequestId>` only if absent, with the order and the outbox
row: the same request twice places one order (the second finds the record and answers
with the first order's id), and a crash between "written" and "answered" cannot leave an
order without its event or an event without its order. Powertools would key on the same
request id but keep its record in another table, outside the transaction.

Orders table (`ORDERS_TABLE`, key `pk` S): `order#<orderId>` (the order and its saga
state, `domain.orders.to_record`), `request#<customerId>#<clientRequestId>` with "%" and
"#" of each id escaped (`domain.orders.request_key`; `orderId`, `customerId`,
`clientRequestId`, `fingerprint` of the customer + lines + currency, `createdAt`).
Records written before the ids were escaped stay readable: a request whose ids hold "%"
or "#" also looks at its former key (`legacy_request_key`), and takes the record found
there only if it names the same customer and request id. A refusal names an order only
to the customer who placed it.
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
from eventcraft.text import printable, truncate
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


# What to quote of a refused value in an error message, in characters.
MAX_QUOTED: Final = 60
# Error types whose message does not show the value refused: the message quotes it.
_QUOTE_INPUT: Final = ("_type", "_parsing", "literal_error", "enum", "string_pattern_mismatch")


def _where(loc: tuple[int | str, ...]) -> str:
    return ".".join(printable(str(part)) for part in loc) or "request"


def _problem(error: Mapping[str, Any]) -> str:
    text = f"{_where(error['loc'])}: {printable(str(error['msg']))}"
    if str(error["type"]).endswith(_QUOTE_INPUT):
        value = error.get("input")
        kind = {bool: "a boolean", str: "a string", type(None): "null"}.get(
            type(value), f"a {type(value).__name__}"
        )
        text += f" (got {truncate(printable(repr(value)), MAX_QUOTED)}, {kind})"
    return text


def parse_request(payload: Any) -> PlaceOrderRequest:
    """Validate a request payload; InvalidOrderError naming each refused field and what
    it allows (invisible characters of field names and values written as escapes)."""
    if not isinstance(payload, Mapping):
        kind = "null" if payload is None else f"a JSON {type(payload).__name__}"
        raise InvalidOrderError(
            f"invalid order request: the request is {kind}; send a JSON object with "
            "clientRequestId, customerId, items and optionally currency and totalCents"
        )
    try:
        return PlaceOrderRequest.model_validate(payload)
    except ValidationError as exc:
        problems = "; ".join(_problem(e) for e in exc.errors())
        raise InvalidOrderError(f"invalid order request: {problems}") from exc


def place_order(request: PlaceOrderRequest, *, now: datetime | None = None) -> PlacedOrder:
    """Place the order `request` asks for, once per (customer, clientRequestId)."""
    table = env(ORDERS_TABLE_ENV)
    legacy = _legacy_record(request, table=table)
    if legacy is not None:
        return _already_placed(request, legacy, table=table)
    for attempt in range(1, MAX_ATTEMPTS + 1):
        try:
            return _write(request, table=table, now=now or utc_now())
        except outbox.ConditionFailedError:
            return _already_placed(request, _request_record(request, table=table), table=table)
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


def _is_its_record(request: PlaceOrderRequest, record: Mapping[str, Any]) -> bool:
    return (
        record.get("customerId") == request.customer_id
        and record.get("clientRequestId") == request.client_request_id
    )


def _legacy_record(request: PlaceOrderRequest, *, table: str) -> Mapping[str, Any] | None:
    """The request's record under its key from before ids were escaped, if it is there
    and is this request's (the same key was shared by other customers' requests)."""
    key = orders.legacy_request_key(request.customer_id, request.client_request_id)
    if key is None:
        return None
    record = dynamodb.get(table, {"pk": key})
    return record if record is not None and _is_its_record(request, record) else None


def _request_record(request: PlaceOrderRequest, *, table: str) -> Mapping[str, Any]:
    key = orders.request_key(request.customer_id, request.client_request_id)
    existing = dynamodb.get(table, {"pk": key})
    if existing is None:
        raise RuntimeError(
            f"the order transaction failed its condition but no request record exists for "
            f"{request.client_request_id!r}: an order id collided; retry the request"
        )
    if not _is_its_record(request, existing):
        # Unreachable with escaped keys; never answer with another customer's order.
        raise RuntimeError(
            f"the request record at {key!r} belongs to another request: the key scheme "
            "is broken (domain.orders.request_key); nothing was placed"
        )
    return existing


def _already_placed(
    request: PlaceOrderRequest, existing: Mapping[str, Any], *, table: str
) -> PlacedOrder:
    if existing.get("fingerprint") != orders.fingerprint(request):
        raise RequestIdReusedError(
            f"clientRequestId {printable(request.client_request_id)!r} was already used by "
            f"customer {printable(request.customer_id)} for order {existing['orderId']} "
            "with other lines: use a new clientRequestId for a new order"
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
