"""What the reusable packages may know: no order-saga code, no imports hidden behind
`importlib` or `sys.path` edits (the sandbox's Lambda runtime loading a handler from its
handler string is the one place where a dynamic import is the point)."""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
REUSABLE = {
    "pulumi_eventcraft": ROOT / "components" / "src" / "pulumi_eventcraft",
    "eventcraft": ROOT / "eventcraft" / "src" / "eventcraft",
    "eventcraft_sandbox": ROOT / "sandbox" / "src" / "eventcraft_sandbox",
}
APPLICATION = {"order_saga", "contracts", "domain", "handlers", "saga", "ops", "policy", "tests"}
# The project's own Python code, everywhere it lives.
OWN_CODE = [
    *REUSABLE.values(),
    ROOT / "order_saga",
    ROOT / "functions",
    ROOT / "ops",
    ROOT / "policy",
    ROOT / "bench",
    ROOT / "examples",
]
HANDLER_LOADING = REUSABLE["eventcraft_sandbox"] / "lambda_runtime"
ORDER_SAGA_WORDS = re.compile(r"order[-_]saga|OrderPlaced|orderId|\bsku\b|place_order", re.I)


def modules(folder: Path) -> Iterator[Path]:
    yield from (p for p in sorted(folder.rglob("*.py")) if "__pycache__" not in p.parts)


def imported(tree: ast.AST) -> Iterator[str]:
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            yield node.module


@pytest.mark.parametrize("package", sorted(REUSABLE))
def test_a_reusable_package_imports_no_application_code(package: str) -> None:
    found = [
        f"{path.relative_to(ROOT)} imports {name}"
        for path in modules(REUSABLE[package])
        for name in imported(ast.parse(path.read_text()))
        if name.split(".")[0] in APPLICATION
    ]
    assert not found


@pytest.mark.parametrize("package", sorted(REUSABLE))
def test_a_reusable_package_knows_no_order_saga_names(package: str) -> None:
    found = [
        f"{path.relative_to(ROOT)}:{number}: {line.strip()}"
        for path in [*modules(REUSABLE[package]), *REUSABLE[package].parents[1].glob("*.md")]
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if ORDER_SAGA_WORDS.search(line)
    ]
    assert not found


def _hidden_imports(path: Path, root: Path = ROOT) -> Iterator[str]:
    where = path.relative_to(root)
    for node in ast.walk(ast.parse(path.read_text())):
        target = node.func if isinstance(node, ast.Call) else None
        if isinstance(target, ast.Attribute):
            owner = ast.unparse(target.value)
            if owner == "importlib" and target.attr == "import_module":
                yield f"{where}:{node.lineno}: importlib.import_module"
            if owner == "sys.path" and target.attr in {"append", "insert", "extend"}:
                yield f"{where}:{node.lineno}: sys.path.{target.attr}"
        if isinstance(node, ast.Assign | ast.AugAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for t in targets:
                if ast.unparse(t).startswith("sys.path"):
                    yield f"{where}:{node.lineno}: {ast.unparse(t)} ="


def test_no_import_of_the_projects_code_hides_behind_importlib_or_sys_path() -> None:
    found = [
        hit
        for folder in OWN_CODE
        if folder.is_dir()
        for path in modules(folder)
        if HANDLER_LOADING not in path.parents
        for hit in _hidden_imports(path)
    ]
    assert not found


def test_the_check_sees_a_hidden_import(tmp_path: Path) -> None:
    module = tmp_path / "m.py"
    module.write_text("import importlib, sys\nsys.path.append('x')\nimportlib.import_module('y')\n")
    assert [hit.split(": ")[1] for hit in _hidden_imports(module, tmp_path)] == [
        "sys.path.append",
        "importlib.import_module",
    ]
