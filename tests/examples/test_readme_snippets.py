"""The sandbox README shows the example's own run, and that run works as printed."""

from __future__ import annotations

import contextlib
import io
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def python_block(readme: Path) -> str:
    (code,) = re.findall(r"```python\n(.*?)```", readme.read_text(), flags=re.S)
    return code


def test_the_sandbox_readme_shows_the_examples_run() -> None:
    example = python_block(ROOT / "examples" / "notifications" / "README.md")
    assert python_block(ROOT / "sandbox" / "README.md") == example


def test_the_examples_readme_run_sends_the_welcome(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # As the README says: pip finds the eventcraft wheel for the example's layer.
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "-q",
            "--no-deps",
            "-w",
            str(tmp_path),
            "eventcraft/",
        ],
        cwd=ROOT,
        check=True,
    )
    links = " ".join(filter(None, [str(tmp_path), os.environ.get("PIP_FIND_LINKS")]))
    monkeypatch.setenv("PIP_FIND_LINKS", links)
    monkeypatch.chdir(ROOT)
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        exec(python_block(ROOT / "examples" / "notifications" / "README.md"), {})
    assert "'userId': 'user-1'" in printed.getvalue()
    assert "'status': 'SENT'" in printed.getvalue()
