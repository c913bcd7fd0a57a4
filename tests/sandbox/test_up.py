"""`python -m sandbox up` prints what the program declares for a stack."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sandbox", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_up_prints_the_mocked_deployment_of_the_dev_stack() -> None:
    result = run("up", "--stack", "dev")
    assert result.returncode == 0, result.stderr
    assert "Stack order-saga-dev (mocked deployment" in result.stdout
    assert "sagaMode: both" in result.stdout


def test_up_with_an_unknown_stack_names_the_stacks_there() -> None:
    result = run("up", "--stack", "staging")
    assert result.returncode == 2
    assert "no stack file Pulumi.staging.yaml; stacks here: dev, prod" in result.stderr
