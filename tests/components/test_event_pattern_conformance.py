"""Conformance: the validator and matcher against cases confirmed on real EventBridge.

The cases live in shared/conformance/eventbridge-patterns/cases (read in place, never
copied). A file's suffix gives the outcome AWS returned: none = match, `_NEG` = valid
pattern, no match, `_EXC` = InvalidEventPatternException. The two plain-JSON files
complex_multi_key_event(_pattern).json are one more match case.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import json5
import pytest

from pulumi_eventcraft.event_pattern import (
    InvalidEventPatternError,
    compile_pattern,
    validate_pattern,
)

CASES = Path(__file__).resolve().parents[2].parent / "shared" / "conformance"
CASES = CASES / "eventbridge-patterns" / "cases"
# The folder as published: 155 JSON5 cases plus the two files of the multi-key case.
EXPECTED_FILES = 157
MULTI_KEY_EVENT = "complex_multi_key_event.json"
MULTI_KEY_PATTERN = "complex_multi_key_event_pattern.json"


def _case_files() -> list[Path]:
    return sorted(CASES.glob("*.json5")) if CASES.is_dir() else []


def _case_params() -> list[Any]:
    # An empty parameter set would be reported as a skip; a missing folder must fail.
    files = _case_files()
    return files or [pytest.param(None, id="no-cases-found")]


def _expected(stem: str) -> str:
    if stem.endswith("_EXC"):
        return "invalid"
    if stem.endswith("_NEG"):
        return "no match"
    return "match"


def test_the_conformance_folder_is_complete() -> None:
    # A missing or truncated folder must fail the run, not shrink it to a few skips.
    assert CASES.is_dir(), f"conformance cases not found at {CASES}"
    files = sorted(p.name for p in CASES.iterdir() if p.is_file())
    assert len(files) >= EXPECTED_FILES, f"expected {EXPECTED_FILES} case files, found {len(files)}"
    assert MULTI_KEY_EVENT in files
    assert MULTI_KEY_PATTERN in files
    assert len(_case_files()) == len(files) - 2


@pytest.mark.parametrize("case_file", _case_params(), ids=lambda p: p.stem)
def test_case(case_file: Path | None) -> None:
    assert case_file is not None, f"no *.json5 conformance cases found in {CASES}"
    case = json5.loads(case_file.read_text(encoding="utf-8"))
    event: dict[str, Any] = case["Event"]
    pattern: dict[str, Any] = case["EventPattern"]
    expected = _expected(case_file.stem)

    if expected == "invalid":
        with pytest.raises(InvalidEventPatternError) as raised:
            validate_pattern(pattern)
        # Every rejection says where and why, not just that it failed.
        assert raised.value.path
        assert raised.value.reason
        return

    assert validate_pattern(pattern) == pattern
    assert compile_pattern(pattern).matches(event) is (expected == "match")
    # The same verdict from the JSON text EventBridge would receive.
    assert compile_pattern(json.dumps(pattern)).matches(json.dumps(event)) is (expected == "match")


def test_complex_multi_key_event() -> None:
    # Plain JSON with a key given twice: the last one is used (documented by AWS), so
    # {"anything-but": "us-east"} decides and "eu-central-1" matches.
    event = json.loads((CASES / MULTI_KEY_EVENT).read_text(encoding="utf-8"))
    pattern_text = (CASES / MULTI_KEY_PATTERN).read_text(encoding="utf-8")

    assert compile_pattern(pattern_text).matches(event) is True
    assert validate_pattern(pattern_text) == {"detail": {"location": [{"anything-but": "us-east"}]}}
