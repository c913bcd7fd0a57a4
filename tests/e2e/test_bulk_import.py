"""The bulk import through the whole stack: a file uploaded to the import bucket is
imported by as many invocations of `import-orders` as it needs, each continuing itself
(issue #11 point 9), under the function's real role (lambda:InvokeFunction on itself)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from eventcraft_sandbox.lambda_context import LambdaContext
from tests.e2e.conftest import E2E, assert_invariants, e2e_session

IMPORT = "import-orders"
# Function time the import's context loses each time the import asks for it (once a
# line): from its 300 s, 3 lines an invocation (the 4th finds 0 s left). The sandbox's
# own handler time (CPU seconds) would make the number of lines an invocation imports
# depend on the machine's speed.
PER_LINE_MS = 75_000


@pytest.fixture(scope="module")
def e2e() -> Iterator[E2E]:
    with e2e_session() as started:
        yield started


@pytest.fixture
def lines_take_time(e2e: E2E, monkeypatch: pytest.MonkeyPatch) -> None:
    """The import's context counts PER_LINE_MS down each time it is asked."""
    importer = e2e.session.function_name(IMPORT)
    real = LambdaContext.get_remaining_time_in_millis

    def remaining(context: LambdaContext) -> int:
        if context.function_name != importer:
            return real(context)
        asked = vars(context).get("asked", 0) + 1
        context.asked = asked  # type: ignore[attr-defined]
        return max(0, real(context) - asked * PER_LINE_MS)

    monkeypatch.setattr(LambdaContext, "get_remaining_time_in_millis", remaining)


def upload(e2e: E2E, key: str, lines: list[Any]) -> None:
    body = "".join((line if isinstance(line, str) else json.dumps(line)) + "\n" for line in lines)
    e2e.session.client("s3").put_object(
        Bucket=e2e.session.outputs["bucket"], Key=key, Body=body.encode()
    )


def rejected_lines(e2e: E2E, key: str) -> list[int]:
    """The lines of `key` reported on the rejected-lines queue (received and deleted)."""
    sqs = e2e.session.client("sqs")
    url = e2e.session.queue_url("rejectedLines")
    found = []
    while messages := sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", []):
        for message in messages:
            report = json.loads(message["Body"])
            if report["key"] == key:
                found.append(report["line"])
            sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
    return sorted(found)


def imported(e2e: E2E, prefix: str) -> list[tuple[str, str]]:
    return sorted(
        (str(o["customerId"]), str(o["status"]))
        for o in e2e.session.orders().values()
        if str(o["customerId"]).startswith(prefix)
    )


def test_a_file_longer_than_one_invocation_completes_on_its_own(
    e2e: E2E, lines_take_time: None
) -> None:
    """8 lines, 3 an invocation: the import continues itself twice and succeeds each
    time (nothing for the error alarm, nothing in its DLQ); every good line is placed
    once and completes, every bad line is reported once."""
    sku = e2e.sku(20)
    bad = {2: "{not json", 7: '{"customerId": "continued-x"}'}
    lines = [
        bad.get(n)
        or {
            "customerId": f"continued-{n}",
            "items": [{"sku": sku, "quantity": 1, "unitPriceCents": 500}],
        }
        for n in range(1, 9)
    ]
    runs = len(e2e.calls.of(IMPORT))

    upload(e2e, "e2e/long.jsonl", lines)
    e2e.run()

    invocations = e2e.calls.of(IMPORT)[runs:]
    results = [i.result.payload for i in invocations]
    assert [i.result.error_type for i in invocations] == [None, None, None]
    assert [(r["nextLine"], r["continued"], r["done"]) for r in results] == [
        (4, True, False),
        (7, True, False),
        (9, False, True),
    ]
    # The continuations are the upload's event, as S3 sent it.
    assert invocations[1].event == invocations[0].event == invocations[2].event
    assert imported(e2e, "continued-") == [
        (f"continued-{n}", "COMPLETED") for n in range(1, 9) if n not in bad
    ]
    assert rejected_lines(e2e, "e2e/long.jsonl") == [2, 7]
    assert e2e.session.dlq_depths()[f"{IMPORT}-async"] == 0
    assert_invariants(e2e.session)


def test_an_import_function_too_short_for_one_line_fails_instead_of_looping(e2e: E2E) -> None:
    """With a 20 s timeout no invocation can import a line: each fails, Lambda retries
    the event twice and then leaves it, with the reason, in the function's DLQ; no
    invocation continues itself."""
    lambda_ = e2e.session.client("lambda")
    importer = e2e.session.function_name(IMPORT)
    runs = len(e2e.calls.of(IMPORT))
    lambda_.update_function_configuration(FunctionName=importer, Timeout=20)
    try:
        upload(e2e, "e2e/stalled.jsonl", [{"customerId": "stalled-1", "items": []}])
        e2e.run()
    finally:
        lambda_.update_function_configuration(FunctionName=importer, Timeout=300)

    invocations = e2e.calls.of(IMPORT)[runs:]
    assert [i.result.error_type for i in invocations] == ["ImportStalledError"] * 3
    assert "no line imported in this invocation, stopped at line 1" in str(
        invocations[0].result.error_message
    )
    (dead,) = e2e.session.dlq_messages(f"{IMPORT}-async")
    assert "ImportStalledError" in json.dumps(dead["body"])
    assert imported(e2e, "stalled-") == []
