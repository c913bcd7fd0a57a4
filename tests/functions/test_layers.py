"""The handler modules are entry points: none imports another (shared code lives in the
application layer, `saga`, or the handler library, `eventcraft`)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

HANDLERS = Path(__file__).resolve().parents[2] / "functions" / "handlers"
MODULES = sorted(p for p in HANDLERS.glob("*.py") if p.stem != "__init__")


def handler_imports(path: Path) -> list[str]:
    """The `handlers` modules that `path` imports (anywhere: lazy imports count)."""
    found: list[str] = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found += [a.name for a in node.names if a.name.split(".")[0] == "handlers"]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module == "handlers":
                found += [f"handlers.{a.name}" for a in node.names]
            elif node.module.startswith("handlers."):
                found.append(node.module)
        elif isinstance(node, ast.ImportFrom) and node.level > 0:
            found.append("." * node.level + (node.module or ""))
    return found


@pytest.mark.parametrize("path", MODULES, ids=lambda p: p.stem)
def test_no_handler_imports_another_handler(path: Path) -> None:
    assert handler_imports(path) == [], (
        f"handlers/{path.name} imports {handler_imports(path)}: move the shared code into "
        "an application module (functions/saga) or the handler library (eventcraft)"
    )


def test_the_check_sees_every_form_of_import(tmp_path: Path) -> None:
    module = tmp_path / "m.py"
    module.write_text(
        "import handlers.a\nfrom handlers import b\nfrom handlers.c import f\n"
        "def g():\n    from . import d\n"
    )
    assert handler_imports(module) == ["handlers.a", "handlers.b", "handlers.c", "."]


def test_there_are_handlers_to_check() -> None:
    assert len(MODULES) > 10
