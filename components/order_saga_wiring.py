"""Shim for importers not yet moved (sandbox/session.py, tests/e2e/conftest.py): removed
once they import the Lambda code root's packages directly."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from types import ModuleType

# Self-contained: importing order_saga here would need the code root on the path first.
CODE_DIR = Path(__file__).resolve().parent.parent / "functions"


def import_code_module(name: str, code_dir: Path = CODE_DIR) -> ModuleType:
    """Import a module of the Lambda code root (e.g. `contracts`)."""
    if str(code_dir) not in sys.path:
        sys.path.append(str(code_dir))
    return importlib.import_module(name)
