"""Reading the stack's outputs: file, Pulumi CLI, and errors that name what is missing."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Sequence
from pathlib import Path

import pytest

from ops import outputs
from ops.errors import UsageError
from tests.ops.conftest import Stack

EXPORTED = {
    "busName": "order-bus",
    "busArn": "arn:aws:events:us-east-1:123456789012:event-bus/order-bus",
    "tables": {"orders": "orders-abc"},
    "queues": {"payments": {"url": "https://q/payments", "dlqUrl": "https://q/payments-dlq"}},
    "dlqs": {"reserve": {"url": "https://q/reserve-dlq", "kind": "rule-target"}},
    "somethingNew": [1, 2, 3],  # unknown keys are ignored
}


def test_a_file_of_pulumi_stack_output_json_is_read(tmp_path: Path) -> None:
    path = tmp_path / "outputs.json"
    path.write_text(json.dumps(EXPORTED))

    stack = outputs.load(outputs_file=str(path), stack=None)

    assert stack.require_bus("x") == "order-bus"
    assert stack.require_table("orders", "x") == "orders-abc"
    assert [(d.name, d.kind, d.source) for d in stack.all_dlqs()] == [
        ("payments-dlq", "queue", "https://q/payments"),
        ("reserve", "rule-target", None),
    ]
    assert stack.find_dlq("payments-dlq") == stack.find_dlq("https://q/payments-dlq")


def test_a_missing_output_is_named(tmp_path: Path) -> None:
    stack = outputs.parse(EXPORTED, origin="test")
    with pytest.raises(UsageError, match=r"no `tables.events` \(the event store\)"):
        stack.require_table("events", "the event store")
    with pytest.raises(UsageError, match="no `archiveName`"):
        stack.require_archive("replays")


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{nope", "is not JSON"),
        ("[1, 2]", "must be a JSON object"),
        (json.dumps({"queues": {"payments": {"dlqUrl": "x"}}}), "output `queues.payments.url`"),
        (json.dumps({"dlqs": {"d": {"url": "x", "kind": "weird"}}}), "output `dlqs.d.kind`"),
    ],
)
def test_bad_files_are_usage_errors(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "outputs.json"
    path.write_text(content)
    with pytest.raises(UsageError, match=message):
        outputs.load(outputs_file=str(path), stack=None)


def test_stack_runs_the_pulumi_cli(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[Sequence[str]] = []

    def runner(argv: Sequence[str]) -> subprocess.CompletedProcess[str]:
        calls.append(argv)
        return subprocess.CompletedProcess(argv, 0, json.dumps(EXPORTED), "")

    stack = outputs.load_stack("dev", runner=runner, which=lambda name: "/usr/bin/pulumi")

    assert calls == [["/usr/bin/pulumi", "stack", "output", "--json", "--stack", "dev"]]
    assert stack.bus_name == "order-bus"


def test_stack_without_the_cli_or_with_a_failing_cli_says_what_to_do() -> None:
    with pytest.raises(UsageError, match=r"not on PATH.*--outputs"):
        outputs.load_stack("dev", which=lambda name: None)

    def failing(argv: Sequence[str]) -> subprocess.CompletedProcess[str]:
        return subprocess.CompletedProcess(argv, 255, "", "error: no stack named 'dev' found")

    with pytest.raises(UsageError, match="no stack named 'dev'"):
        outputs.load_stack("dev", runner=failing, which=lambda name: "/usr/bin/pulumi")


def test_the_cli_needs_one_source_of_outputs(stack: Stack) -> None:
    none = stack.ops("dlq", "list", use_outputs=False)
    assert none.code == 2 and "--stack NAME" in none.err
    both = stack.ops("dlq", "list", "--stack", "dev")
    assert both.code == 2 and "not both" in both.err
    missing = stack.ops("dlq", "list", "--outputs", "/nonexistent.json", use_outputs=False)
    assert missing.code == 2 and "cannot read the stack outputs file" in missing.err


def test_common_options_go_before_or_after_the_command(stack: Stack) -> None:
    before = stack.ops(
        "--json", "--outputs", str(stack.outputs_file), "dlq", "list", use_outputs=False
    )
    after = stack.ops("dlq", "list", "--json")
    assert before.code == after.code == 0
    assert before.json()["totalMessages"] == after.json()["totalMessages"] == 0


def test_bad_arguments_exit_2(stack: Stack) -> None:
    assert stack.ops("dlq", "inspect", "payments-dlq", "--max", "0").code == 2
    assert stack.ops("replay", use_outputs=False).code == 2
    assert stack.ops("frobnicate", use_outputs=False).code == 2
    assert stack.ops("--help", use_outputs=False).code == 0


def test_an_outputs_file_that_is_not_utf8_is_named(stack: Stack, tmp_path: Path) -> None:
    # `pulumi stack output --json > FILE` in Windows PowerShell 5 writes UTF-16.
    path = tmp_path / "outputs.json"
    path.write_bytes(stack.outputs_file.read_text().encode("utf-16"))

    run = stack.ops("dlq", "list", "--outputs", str(path), use_outputs=False)

    assert run.code == 2
    assert run.err.startswith(
        f"ops: error: cannot read the stack outputs file {path}: it is not UTF-8 text "
        "(byte 0xff at offset 0); save it as UTF-8."
    )
    assert "pulumi stack output --json" in run.err


def test_an_outputs_file_with_nan_or_nested_too_deeply_is_a_usage_error(tmp_path: Path) -> None:
    path = tmp_path / "outputs.json"
    for content, reason in [
        ('{"busName": NaN}', "NaN is not a JSON number"),
        ("[" * 100_000 + "]" * 100_000, "it is nested too deeply to read"),
    ]:
        path.write_text(content)
        with pytest.raises(UsageError) as raised:
            outputs.load(outputs_file=str(path), stack=None)
        assert str(raised.value).startswith(f"{path} is not JSON: {reason}")
