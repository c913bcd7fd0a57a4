"""Order activity in event-time windows: what is counted, and how a late event is reported.

Pure: no boto3. `eventcraft.windows` does the windowing (tumbling windows, watermark,
allowed lateness, exactly-once counting per event id); this module says what an order
event contributes and what a rejected late event looks like.

Window keys: the detail-type, plus the currency for events that carry money
("OrderPlaced#USD", "PaymentProcessed#EUR", "OrderShipped"): count = events of that type
in the window, total = their amounts (minor units; 0 for events without money). Money of
different currencies is never summed together.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, Final

from contracts import Event
from eventcraft.windows import TumblingWindows, WindowEvent

WINDOW_SECONDS_ENV: Final = "WINDOW_SECONDS"
ALLOWED_LATENESS_ENV: Final = "ALLOWED_LATENESS_SECONDS"
LATE_EVENT_REJECTED: Final = "LateEventRejected"
_AMOUNT_FIELDS: Final = ("total_cents", "amount_cents")


class WindowConfigError(ValueError):
    """The window settings are invalid."""


def _seconds(name: str, raw: str | None, *, minimum: int) -> int:
    if raw is None or not raw.strip().isdigit() or int(raw) < minimum:
        raise WindowConfigError(
            f"{name}={raw!r} is not a whole number of seconds >= {minimum}: the function's "
            "component must set it"
        )
    return int(raw)


def tumbling_windows(window_seconds: str | None, lateness_seconds: str | None) -> TumblingWindows:
    """The windows of the WINDOW_SECONDS / ALLOWED_LATENESS_SECONDS settings."""
    return TumblingWindows(
        size=timedelta(seconds=_seconds(WINDOW_SECONDS_ENV, window_seconds, minimum=1)),
        allowed_lateness=timedelta(
            seconds=_seconds(ALLOWED_LATENESS_ENV, lateness_seconds, minimum=0)
        ),
    )


def window_key(event: Event) -> str:
    currency = getattr(event, "currency", None)
    return f"{event.DETAIL_TYPE}#{currency}" if currency else event.DETAIL_TYPE


def amount(event: Event) -> int:
    for name in _AMOUNT_FIELDS:
        value = getattr(event, name, None)
        if isinstance(value, int):
            return value
    return 0


def window_event(event: Event) -> WindowEvent:
    """What `event` contributes: counted once (by eventId) in the window of its event time."""
    return WindowEvent(
        event_id=event.event_id,
        key=window_key(event),
        event_time=event.occurred_at,
        value=amount(event),
    )


def late_event_rejected(
    event: Event,
    windows: TumblingWindows,
    watermark: datetime | None,
    *,
    sequence_number: str | None = None,
) -> dict[str, Any]:
    """The report of an event that arrived after its window closed for good (the
    watermark passed its end): not counted, and not lost."""
    window = windows.window_of(window_key(event), event.occurred_at)
    return {
        "type": LATE_EVENT_REJECTED,
        "eventId": event.event_id,
        "detailType": event.DETAIL_TYPE,
        "windowKey": window.key,
        "eventTime": event.occurred_at.isoformat(),
        "windowStart": window.start.isoformat(),
        "windowEnd": window.end.isoformat(),
        "watermark": watermark.isoformat() if watermark else None,
        "allowedLatenessSeconds": int(windows.allowed_lateness.total_seconds()),
        "sequenceNumber": sequence_number,
        "detail": event.to_detail(),
    }
