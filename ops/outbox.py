"""`outbox list`, `outbox republish`: the outbox rows not yet published.

The relay publishes each outbox row within seconds of its write. A row it gave up on (an
EventBridge outage longer than its retries; its DLQ then holds a stream pointer to the
row) stays in the outbox table, unpublished, in the table's `pending` index. The
scheduled sweeper republishes such rows a couple of minutes after they were written;
these commands do the same by hand: `list` shows them, oldest first, and `republish`
puts their events on the bus and marks each row published with the relay's own
conditional update (`eventcraft.outbox`). A row the relay or the sweeper publishes at
the same time goes out twice, which the consumers absorb (they deduplicate on the
event's eventId).

`--older-than SECONDS` (default 60) leaves the rows the relay is still publishing to it.
Reading, publishing and marking: `eventcraft.outbox`; the bus puts go through
`eventcraft.publisher.Publisher` (failed entries retried, never dropped silently).
"""

from __future__ import annotations

import itertools
import json
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from botocore.exceptions import ClientError

from eventcraft import outbox
from eventcraft.outbox import PendingRow
from eventcraft.publisher import Publisher
from ops.aws import Clients, error_code
from ops.errors import EXIT_FAILED, OpsError, UsageError
from ops.outputs import StackOutputs
from ops.render import duration, fields, iso, table
from ops.result import Result

DEFAULT_OLDER_THAN: Final = 60.0
DEFAULT_MAX: Final = 100
MAX_MAX: Final = 10_000


def _check(older_than: float, limit: int) -> None:
    if older_than < 0:
        raise UsageError(f"--older-than must be >= 0 seconds, got {older_than:g}")
    if not 1 <= limit <= MAX_MAX:
        raise UsageError(f"--max must be 1..{MAX_MAX}, got {limit}")


def _rows(
    clients: Clients, table_name: str, older_than: float, now: datetime
) -> Iterator[PendingRow]:
    """The unpublished rows written `older_than` seconds before `now`, oldest first; a
    table without the `pending` index is named with what to do."""
    rows = outbox.unpublished(
        table_name, written_before=now - timedelta(seconds=older_than), client=clients.dynamodb
    )
    try:
        yield from rows
    except ClientError as exc:
        if error_code(exc) == "ValidationException" and "index" in str(exc).lower():
            raise OpsError(
                f"the outbox table {table_name} has no `{outbox.PENDING_INDEX}` index, where "
                "the unpublished rows are found: deploy the version of the program that "
                "declares it (pulumi_eventcraft.table.outbox_table())"
            ) from exc
        raise


def describe(row: PendingRow, now: datetime) -> dict[str, Any]:
    """What `list` shows of one row."""
    try:
        detail = json.loads(row.detail)
    except ValueError:
        detail = {}
    order_id = detail.get("orderId") if isinstance(detail, dict) else None
    return {
        "eventId": row.event_id,
        "detailType": row.detail_type,
        "source": row.source,
        "createdAt": iso(row.created_at),
        "ageSeconds": round((now - row.created_at).total_seconds(), 1),
        "orderId": str(order_id) if order_id is not None else None,
    }


def _rows_table(rows: list[dict[str, Any]]) -> str:
    return table(
        ["event", "detail-type", "order", "written", "age"],
        [
            (r["eventId"], r["detailType"], r["orderId"], r["createdAt"], duration(r["ageSeconds"]))
            for r in rows
        ],
    )


def list_rows(
    clients: Clients,
    outputs: StackOutputs,
    *,
    older_than: float = DEFAULT_OLDER_THAN,
    limit: int = DEFAULT_MAX,
    now: datetime | None = None,
) -> Result:
    """Up to `limit` unpublished rows older than `older_than` seconds, oldest first."""
    _check(older_than, limit)
    table_name = outputs.require_table("outbox", "reading the unpublished outbox rows")
    now = now or datetime.now(UTC)
    found = list(itertools.islice(_rows(clients, table_name, older_than, now), limit + 1))
    more = len(found) > limit
    rows = [describe(row, now) for row in found[:limit]]
    data = {
        "table": table_name,
        "olderThanSeconds": older_than,
        "count": len(rows),
        "more": more,
        "rows": rows,
    }
    parts = [
        fields(
            {
                "outbox table": table_name,
                "unpublished": f"{len(rows)}{' or more' if more else ''}",
                "written over": f"{duration(older_than)} ago",
            }
        ),
        _rows_table(rows),
    ]
    if rows:
        parts.append(
            "the sweeper republishes these within minutes once the bus takes events; to "
            "do it now: python -m ops ... outbox republish"
        )
    return Result(data, "\n\n".join(parts))


def republish(
    clients: Clients,
    outputs: StackOutputs,
    *,
    older_than: float = DEFAULT_OLDER_THAN,
    limit: int = DEFAULT_MAX,
    dry_run: bool = False,
    now: datetime | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> Result:
    """Publish up to `limit` unpublished rows older than `older_than` seconds, oldest
    first, marking each one published; with `dry_run`, only say which."""
    _check(older_than, limit)
    table_name = outputs.require_table("outbox", "republishing the unpublished outbox rows")
    bus = outputs.require_bus("republishing the unpublished outbox rows")
    now = now or datetime.now(UTC)
    if dry_run:
        listed = list_rows(clients, outputs, older_than=older_than, limit=limit, now=now)
        data = {**listed.data, "dryRun": True, "bus": bus}
        return Result(data, f"dry run: would republish to bus {bus}\n\n{listed.text}")
    result = outbox.republish(
        _rows(clients, table_name, older_than, now),
        table_name=table_name,
        publisher=Publisher(bus, client=clients.events, sleep=sleep),
        client=clients.dynamodb,
        limit=limit,
    )
    failed = [{"eventId": f.event_id, "reason": f.reason} for f in result.failures]
    data = {
        "table": table_name,
        "bus": bus,
        "dryRun": False,
        "republished": result.marked,
        "alreadyPublished": result.already_marked,
        "failed": failed,
        "moreLeft": result.more_left,
    }
    parts = [
        fields(
            {
                "outbox table": table_name,
                "bus": bus,
                "republished": len(result.marked),
                "already marked": len(result.already_marked),
                "failed": len(failed),
                "more left": result.more_left,
            }
        )
    ]
    if result.already_marked:
        parts.append(
            "already marked: the relay or the sweeper published those rows meanwhile; "
            "they went out twice (consumers deduplicate on eventId)"
        )
    if failed:
        parts.append(table(["event", "reason"], [(f["eventId"], f["reason"]) for f in failed]))
        parts.append(
            "the bus refused them: they stay unpublished (run again once it takes events; "
            "the sweeper retries them too)"
        )
    elif result.more_left:
        parts.append(f"more rows are waiting: run again (at most --max {limit} per run)")
    return Result(data, "\n\n".join(parts), EXIT_FAILED if failed else 0)
