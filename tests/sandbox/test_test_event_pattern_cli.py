"""`python -m eventcraft_sandbox test-event-pattern`
(eventcraft_sandbox.test_event_pattern.main) mirrors `aws events test-event-pattern`."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from eventcraft_sandbox.test_event_pattern import REQUIRED_EVENT_FIELDS, main

ROOT = Path(__file__).resolve().parents[2]

EVENT: dict[str, Any] = {
    "version": "0",
    "id": "1",
    "detail-type": "OrderPlaced",
    "source": "orders",
    "account": "123456789012",
    "time": "2026-01-02T03:04:05Z",
    "region": "us-east-1",
    "resources": [],
    "detail": {"amount": 1500},
}
HIGH_VALUE = {"source": ["orders"], "detail": {"amount": [{"numeric": [">=", 1000]}]}}


def run(capsys: pytest.CaptureFixture[str], pattern: Any, event: Any) -> tuple[int, str, str]:
    pattern_arg = pattern if isinstance(pattern, str) else json.dumps(pattern)
    event_arg = event if isinstance(event, str) else json.dumps(event)
    code = main(["--event-pattern", pattern_arg, "--event", event_arg])
    out, err = capsys.readouterr()
    return code, out, err


def test_prints_true_when_the_pattern_matches(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, HIGH_VALUE, EVENT)

    assert (code, err) == (0, "")
    assert out == '{"Result": true}\n'


def test_prints_false_when_it_does_not(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, HIGH_VALUE, {**EVENT, "detail": {"amount": 999}})

    assert (code, err) == (0, "")
    assert json.loads(out) == {"Result": False}


def test_invalid_pattern_exits_2_with_the_reason(capsys: pytest.CaptureFixture[str]) -> None:
    bad = {"detail": {"amount": [{"numeric": ["=>", 1000]}]}}

    code, out, err = run(capsys, bad, EVENT)

    assert (code, out) == (2, "")
    assert "InvalidEventPatternException" in err
    assert 'detail.amount: numeric operator "=>" is not allowed; use one of <, <=, =, >, >=' in err


@pytest.mark.parametrize(
    ("pattern", "event", "reason"),
    [
        ('{"source": ["orders"]', EVENT, "not valid JSON"),
        (HIGH_VALUE, "{not json", "Parameter Event is not valid"),
        (HIGH_VALUE, "[]", "not a JSON object"),
    ],
)
def test_invalid_json_exits_2(
    capsys: pytest.CaptureFixture[str], pattern: Any, event: Any, reason: str
) -> None:
    code, out, err = run(capsys, pattern, event)

    assert (code, out) == (2, "")
    assert reason in err


@pytest.mark.parametrize("field", REQUIRED_EVENT_FIELDS)
def test_event_missing_a_required_field_exits_2(
    capsys: pytest.CaptureFixture[str], field: str
) -> None:
    event = {k: v for k, v in EVENT.items() if k != field}

    code, out, err = run(capsys, HIGH_VALUE, event)

    assert (code, out) == (2, "")
    assert "ValidationException" in err
    assert f"missing required field(s): {field}" in err


def test_event_without_resources_is_accepted_as_the_service_does(
    capsys: pytest.CaptureFixture[str],
) -> None:
    event = {k: v for k, v in EVENT.items() if k != "resources"}

    code, out, _ = run(capsys, HIGH_VALUE, event)

    assert code == 0
    assert json.loads(out) == {"Result": True}


def test_file_arguments_are_read_like_the_aws_cli(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "pattern.json").write_text(json.dumps(HIGH_VALUE), encoding="utf-8")
    (tmp_path / "event.json").write_text(json.dumps(EVENT), encoding="utf-8")
    monkeypatch.chdir(tmp_path)

    absolute = main(
        [
            "--event-pattern",
            f"file://{tmp_path / 'pattern.json'}",
            "--event",
            f"file://{tmp_path / 'event.json'}",
        ]
    )
    relative = main(["--event-pattern", "file://pattern.json", "--event", "file://event.json"])
    out, _ = capsys.readouterr()

    assert (absolute, relative) == (0, 0)
    assert out.splitlines() == ['{"Result": true}', '{"Result": true}']


def test_unreadable_file_exits_2(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, out, err = run(capsys, f"file://{tmp_path / 'missing.json'}", EVENT)

    assert (code, out) == (2, "")
    assert "Unable to load paramfile" in err


def test_missing_arguments_exit_2_without_raising(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["--event-pattern", json.dumps(HIGH_VALUE)])
    _, err = capsys.readouterr()

    assert code == 2
    assert "--event" in err


def test_patterns_up_to_the_api_maximum_are_accepted(capsys: pytest.CaptureFixture[str]) -> None:
    # TestEventPattern takes up to 4096 characters; the 2048 quota is for rules.
    long_pattern = {"source": ["x" * 3000]}

    code, out, _ = run(capsys, long_pattern, EVENT)
    assert (code, json.loads(out)) == (0, {"Result": False})

    code, _, err = run(capsys, {"source": ["x" * 4100]}, EVENT)
    assert code == 2
    assert "at most 4096" in err


def _subprocess(*args: str) -> subprocess.CompletedProcess[str]:
    script = (
        "import sys; from eventcraft_sandbox.test_event_pattern import main; "
        "sys.exit(main(sys.argv[1:]))"
    )
    return subprocess.run(
        [sys.executable, "-c", script, *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_exit_codes_from_a_real_process() -> None:
    ok = _subprocess("--event-pattern", json.dumps(HIGH_VALUE), "--event", json.dumps(EVENT))
    bad = _subprocess("--event-pattern", '{"source": "orders"}', "--event", json.dumps(EVENT))

    assert (ok.returncode, ok.stdout, ok.stderr) == (0, '{"Result": true}\n', "")
    assert (bad.returncode, bad.stdout) == (2, "")
    assert "source: must be an array of match values" in bad.stderr


@pytest.mark.parametrize("argument", ["--event-pattern", "--event"])
def test_a_file_that_is_not_utf8_exits_2_naming_it(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, argument: str
) -> None:
    latin1 = tmp_path / "latin1.json"
    latin1.write_bytes('{"source": ["caf\u00e9"]}'.encode("latin-1"))
    values = {"--event-pattern": json.dumps(HIGH_VALUE), "--event": json.dumps(EVENT)}
    values[argument] = f"file://{latin1}"

    code = main([arg for pair in values.items() for arg in pair])
    out, err = capsys.readouterr()

    assert (code, out) == (2, "")
    assert f"Error parsing parameter '{argument}': Unable to load paramfile file://{latin1}" in err
    assert f"{latin1} is not UTF-8 (byte 0xe9 at offset 16" in err


def _nested_event(depth: int) -> str:
    """EVENT whose detail.amount sits inside arrays: `depth` levels in all."""
    arrays = depth - 2  # the event object, then detail
    event = json.dumps({**EVENT, "detail": {"amount": "AMOUNT"}})
    return event.replace('"AMOUNT"', "[" * arrays + "1500" + "]" * arrays)


def test_an_event_nested_up_to_1000_levels_is_matched_deeper_exits_2(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # "PutEvents will only process nested JSON up to 1000 levels deep."
    code, out, err = run(capsys, HIGH_VALUE, _nested_event(1000))
    assert (code, out, err) == (0, '{"Result": true}\n', "")

    for depth in (1001, 100_000):
        code, out, err = run(capsys, HIGH_VALUE, _nested_event(depth))
        assert (code, out) == (2, "")
        assert "ValidationException" in err
        assert "Parameter Event is not valid. (the JSON is nested more than 1000 levels deep" in err


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
def test_nan_and_infinity_are_not_json_and_exit_2(
    capsys: pytest.CaptureFixture[str], constant: str
) -> None:
    event = json.dumps(EVENT).replace("1500", constant)
    pattern = json.dumps(HIGH_VALUE).replace("1000", constant)

    code, out, err = run(capsys, HIGH_VALUE, event)
    assert (code, out) == (2, "")
    assert f"Parameter Event is not valid. ({constant} is not a JSON number" in err

    code, out, err = run(capsys, pattern, EVENT)
    assert (code, out) == (2, "")
    assert "InvalidEventPatternException" in err
    assert f"pattern: not valid JSON ({constant} is not a JSON number" in err


def test_numeric_bounds_beyond_5e9_are_an_invalid_pattern(
    capsys: pytest.CaptureFixture[str],
) -> None:
    beyond = {"detail": {"amount": [{"numeric": [">=", 5_000_000_001]}]}}

    code, out, err = run(capsys, beyond, EVENT)

    assert (code, out) == (2, "")
    assert "InvalidEventPatternException" in err
    assert 'detail.amount: numeric value for ">=" 5000000001 is out of range' in err
    assert "between -5000000000 and 5000000000 inclusive" in err


def test_bad_input_exits_2_without_a_traceback_from_a_real_process(tmp_path: Path) -> None:
    latin1 = tmp_path / "event.json"
    event = json.dumps({**EVENT, "source": "caf\u00e9"}, ensure_ascii=False)
    latin1.write_bytes(event.encode("latin-1"))
    deep = tmp_path / "deep.json"
    deep.write_text(_nested_event(5000), encoding="utf-8")

    for event_file, reason in (
        (latin1, f"{latin1} is not UTF-8"),
        (deep, "nested more than 1000 levels deep"),
    ):
        done = _subprocess(
            "--event-pattern", json.dumps(HIGH_VALUE), "--event", f"file://{event_file}"
        )
        assert (done.returncode, done.stdout) == (2, "")
        assert "Traceback" not in done.stderr
        assert reason in done.stderr
