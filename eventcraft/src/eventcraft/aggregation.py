"""Fork/join by events: collect the results of parallel checks, complete the join once.

    join = Aggregator("order-checks", required={"inventory", "credit", "shipping"})

    def record_handler(record):
        result = CheckResult(name="credit", outcome="PASSED", data={"limit": 500})
        join.record_and_emit(order_id, result, emit=lambda state: publish(
            ALL_CHECKS_COMPLETE, all_checks_complete(state), event_id=completion_event_id(state)))

Each result is recorded with ONE conditional UpdateItem (ReturnValues=ALL_NEW): the check
is added only if it is not there yet (a redelivered result is a no-op, the first outcome
stands), and the returned item says whether every required check is now in. The caller
that sees completion claims it with a second conditional UpdateItem; exactly one caller
holds the claim, emits AllChecksComplete and marks it emitted.

Losing the completion is worse than a duplicate, so the claim is a lease (claim_seconds):
if its holder dies before marking the join emitted, a redelivered result takes over once
the lease has expired. Until then a redelivered result of a complete, unemitted join
raises CompletionPendingError so that its message is retried rather than deleted. The
completion event's id is deterministic (`completion_event_id`): consumers deduplicate the
rare second emission (holder emitted, then died before marking).

Table: partition key `joinId` (S) (or `key_attribute`). Each check is a top-level
attribute `check:<name>` (a map: outcome, data as JSON, recordedAt): DynamoDB cannot set
a key inside a map attribute that does not exist yet (ValidationException), so a single
UpdateItem could not both create the map and add to it. Other attributes: createdAt,
updatedAt, completedAt, claimedUntil (N, epoch seconds), emittedAt, expiresAt (N, TTL).
IAM: dynamodb:UpdateItem (and GetItem for `get`) on the table.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final

from eventcraft.dynamodb import TableAdapter

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.client import DynamoDBClient

ALL_CHECKS_COMPLETE: Final = "AllChecksComplete"
CHECK_PREFIX: Final = "check:"


# -- domain ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CheckResult:
    """One branch's result: `name` (e.g. "credit"), `outcome` (e.g. "PASSED"), `data`.
    `recorded_at` is set by the store."""

    name: str
    outcome: str
    data: Mapping[str, Any] = field(default_factory=dict)
    recorded_at: str = ""


@dataclass(frozen=True)
class JoinState:
    """A join as stored: the checks recorded so far and its completion bookkeeping."""

    join_id: str
    required: frozenset[str]
    checks: Mapping[str, CheckResult]
    completed_at: str | None = None
    claimed_until: float | None = None
    emitted_at: str | None = None

    @property
    def missing(self) -> frozenset[str]:
        return self.required - self.checks.keys()

    @property
    def complete(self) -> bool:
        return not self.missing

    def claim_is_live(self, now: float) -> bool:
        return self.claimed_until is not None and self.claimed_until >= now

    def needs_emitting(self) -> bool:
        return self.complete and self.emitted_at is None


@dataclass(frozen=True)
class RecordOutcome:
    """recorded: False if this check was already recorded (a duplicate: nothing changed).
    just_completed: True for exactly one caller: it holds the completion claim and must
    emit AllChecksComplete, then `mark_emitted` (record_and_emit does both)."""

    state: JoinState
    recorded: bool
    just_completed: bool


def all_checks_complete(state: JoinState, *, passed: str = "PASSED") -> dict[str, Any]:
    """The AllChecksComplete event's detail: every check's outcome and data, and
    `allPassed` (every outcome equal to `passed`)."""
    return {
        "joinId": state.join_id,
        "checks": {
            name: {"outcome": check.outcome, "data": dict(check.data)}
            for name, check in sorted(state.checks.items())
        },
        "allPassed": all(check.outcome == passed for check in state.checks.values()),
    }


def completion_event_id(state: JoinState) -> str:
    """The same id every time the join's completion is emitted (consumers deduplicate)."""
    return f"{state.join_id}:{ALL_CHECKS_COMPLETE}"


class AggregationError(Exception):
    """Base class of the aggregator's errors."""


class UnknownCheckError(AggregationError, ValueError):
    def __init__(self, name: str, required: frozenset[str]) -> None:
        self.name = name
        super().__init__(
            f"Check {name!r} is not one of this join's required checks {sorted(required)}: "
            "fix the check's name where the result is produced, or add it to "
            "Aggregator(required=...). Nothing was recorded."
        )


class CompletionPendingError(AggregationError):
    """The join is complete but not yet emitted, and another invocation holds the claim."""

    def __init__(self, join_id: str, claimed_until: float) -> None:
        self.join_id = join_id
        self.claimed_until = claimed_until
        until = datetime.fromtimestamp(claimed_until, UTC).isoformat(timespec="seconds")
        super().__init__(
            f"Join {join_id!r} is complete and another invocation is emitting "
            f"{ALL_CHECKS_COMPLETE} (claim until {until}). Let this message be retried "
            "(report it as a batch item failure): if that invocation dies, the retry "
            "takes over the emission after the claim expires."
        )


# -- adapter + use case ---------------------------------------------------------------------


def _old_item(error: Any) -> Mapping[str, Any]:
    """The item a ConditionalCheckFailed carries (ReturnValuesOnConditionCheckFailure)."""
    item: Mapping[str, Any] = error.response.get("Item", {})
    return item


def _iso(epoch_seconds: float) -> str:
    moment = datetime.fromtimestamp(epoch_seconds, UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


class Aggregator(TableAdapter):
    """Records check results of joins in a DynamoDB table.

    required: the checks a join waits for (non-empty).
    key_attribute: the table's partition key (default "joinId").
    claim_seconds: how long a completion claim holds before a retry may take it over
        (default 60): longer than emitting takes, shorter than the queue's visibility
        timeout times its maxReceiveCount.
    ttl_seconds: sets `expiresAt` (epoch seconds) on new joins for DynamoDB TTL
        (default 7 days; None: no expiry).
    clock: epoch seconds (default time.time); injectable for tests.
    """

    def __init__(
        self,
        table_name: str,
        required: Iterable[str],
        *,
        key_attribute: str = "joinId",
        client: DynamoDBClient | None = None,
        claim_seconds: float = 60.0,
        ttl_seconds: int | None = 7 * 24 * 3600,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.required = frozenset(required)
        if not self.required:
            raise ValueError("Aggregator(required=...) needs at least one check name")
        if claim_seconds <= 0:
            raise ValueError(f"claim_seconds must be > 0, got {claim_seconds}")
        super().__init__(table_name, client=client)
        self.key_attribute = key_attribute
        self.claim_seconds = claim_seconds
        self.ttl_seconds = ttl_seconds
        self.clock = clock

    def _key(self, join_id: str) -> dict[str, Any]:
        return {self.key_attribute: {"S": join_id}}

    def record(self, join_id: str, result: CheckResult) -> RecordOutcome:
        """Record `result` for `join_id` (a redelivered result is a no-op) and, if the join
        is now complete and unclaimed, claim its completion (`just_completed`).

        Raises UnknownCheckError for a check not in `required`; CompletionPendingError if
        the join is complete, unemitted and claimed by another live invocation.
        """
        if result.name not in self.required:
            raise UnknownCheckError(result.name, self.required)
        now = self.clock()
        now_iso = _iso(now)
        names = {"#c": CHECK_PREFIX + result.name, "#u": "updatedAt", "#cr": "createdAt"}
        values: dict[str, Any] = {
            ":r": {
                "M": {
                    "outcome": {"S": result.outcome},
                    "data": {"S": json.dumps(dict(result.data), separators=(",", ":"))},
                    "recordedAt": {"S": now_iso},
                }
            },
            ":now": {"S": now_iso},
        }
        update = "SET #c = :r, #u = :now, #cr = if_not_exists(#cr, :now)"
        if self.ttl_seconds is not None:
            names["#ttl"] = "expiresAt"
            values[":ttl"] = {"N": str(int(now) + self.ttl_seconds)}
            update += ", #ttl = if_not_exists(#ttl, :ttl)"
        client = self.client
        item: Mapping[str, Any]
        try:
            item = client.update_item(
                TableName=self.table_name,
                Key=self._key(join_id),
                UpdateExpression=update,
                ConditionExpression="attribute_not_exists(#c)",
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=values,
                ReturnValues="ALL_NEW",
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            ).get("Attributes", {})
            recorded = True
        except client.exceptions.ConditionalCheckFailedException as duplicate:
            # The item as it was comes back with the failure: no second read.
            item = _old_item(duplicate)
            recorded = False
        state = self._state(join_id, item)
        if not state.needs_emitting():
            return RecordOutcome(state, recorded, just_completed=False)
        claimed, state = self._claim(join_id, now, state)
        if claimed:
            return RecordOutcome(state, recorded, just_completed=True)
        if state.needs_emitting() and state.claimed_until is not None:
            raise CompletionPendingError(join_id, state.claimed_until)
        return RecordOutcome(state, recorded, just_completed=False)

    def _claim(self, join_id: str, now: float, seen: JoinState) -> tuple[bool, JoinState]:
        """Claim the completion; (claimed, the join as it is now)."""
        if seen.claim_is_live(now):
            return False, seen
        client = self.client
        try:
            item = client.update_item(
                TableName=self.table_name,
                Key=self._key(join_id),
                UpdateExpression="SET #ca = if_not_exists(#ca, :now), #cu = :until",
                ConditionExpression=(
                    "attribute_not_exists(#em) AND (attribute_not_exists(#cu) OR #cu < :t)"
                ),
                ExpressionAttributeNames={
                    "#ca": "completedAt",
                    "#cu": "claimedUntil",
                    "#em": "emittedAt",
                },
                ExpressionAttributeValues={
                    ":now": {"S": _iso(now)},
                    ":until": {"N": repr(now + self.claim_seconds)},
                    ":t": {"N": repr(now)},
                },
                ReturnValues="ALL_NEW",
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )["Attributes"]
        except client.exceptions.ConditionalCheckFailedException as lost:
            return False, self._state(join_id, _old_item(lost))
        return True, self._state(join_id, item)

    def mark_emitted(self, join_id: str) -> None:
        """Record that AllChecksComplete was emitted: later results are no-ops."""
        self.client.update_item(
            TableName=self.table_name,
            Key=self._key(join_id),
            UpdateExpression="SET #em = if_not_exists(#em, :now) REMOVE #cu",
            ExpressionAttributeNames={"#em": "emittedAt", "#cu": "claimedUntil"},
            ExpressionAttributeValues={":now": {"S": _iso(self.clock())}},
        )

    def release(self, join_id: str) -> None:
        """Give up a claim without emitting (emit failed): a retry can claim at once."""
        client = self.client
        # Already emitted: nothing to release.
        with contextlib.suppress(client.exceptions.ConditionalCheckFailedException):
            client.update_item(
                TableName=self.table_name,
                Key=self._key(join_id),
                UpdateExpression="REMOVE #cu",
                ConditionExpression="attribute_not_exists(#em)",
                ExpressionAttributeNames={"#cu": "claimedUntil", "#em": "emittedAt"},
            )

    def record_and_emit(
        self, join_id: str, result: CheckResult, emit: Callable[[JoinState], None]
    ) -> RecordOutcome:
        """`record`, then, for the one caller that completes the join, `emit(state)` and
        `mark_emitted`. If emit raises, the claim is released and the error propagates
        (the message is retried and the retry emits)."""
        outcome = self.record(join_id, result)
        if outcome.just_completed:
            try:
                emit(outcome.state)
            except BaseException:
                self.release(join_id)
                raise
            self.mark_emitted(join_id)
        return outcome

    def get(self, join_id: str) -> JoinState | None:
        item = self.client.get_item(
            TableName=self.table_name, Key=self._key(join_id), ConsistentRead=True
        ).get("Item")
        return None if item is None else self._state(join_id, item)

    def _state(self, join_id: str, item: Mapping[str, Any]) -> JoinState:
        checks: dict[str, CheckResult] = {}
        for attribute, value in item.items():
            if not attribute.startswith(CHECK_PREFIX):
                continue
            fields = value["M"]
            name = attribute[len(CHECK_PREFIX) :]
            checks[name] = CheckResult(
                name=name,
                outcome=fields["outcome"]["S"],
                data=json.loads(fields["data"]["S"]),
                recorded_at=fields.get("recordedAt", {}).get("S", ""),
            )
        claimed = item.get("claimedUntil")
        return JoinState(
            join_id=join_id,
            required=self.required,
            checks=checks,
            completed_at=item.get("completedAt", {}).get("S"),
            claimed_until=float(claimed["N"]) if claimed else None,
            emitted_at=item.get("emittedAt", {}).get("S"),
        )
