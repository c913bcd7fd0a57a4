"""Benchmark 2: cold start, the import time of each handler module in a fresh interpreter.

For each `functions/handlers/<name>.py` (PYTHONPATH=functions, cwd functions/, as the
Lambda task root):
* `runs` fresh processes run `import handlers.<name>` between two `perf_counter` calls
  and print the difference: the median is the import cost a cold Lambda pays on top of
  the runtime's own start (the process's whole wall time is recorded too);
* `importtime_runs` more processes run the same import under `python -X importtime`;
  the tree is parsed and the "heaviest imports" are the library modules imported
  directly by project code (handlers, eventcraft, contracts, domain), by median
  cumulative time, with the project module that pulled each in;
* a static (AST) check flags module-level imports that the importing module never uses
  at run time (unused, or used only in annotations, which `from __future__ import
  annotations` never evaluates): in the handler itself and in every project module it
  loads, with what that import statement costs in this handler's tree.

Runs are interleaved across handlers (round-robin), one unmeasured warm-up each first
(bytecode and page cache), so slow phases of a noisy machine hit every handler alike.
Reference rows: the bare interpreter (`pass`) and `import pydantic` / `import boto3`.
"""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench import common

PROJECT_PACKAGES = frozenset({"handlers", "eventcraft", "contracts", "domain", "saga"})
HEAVY_LIBRARIES = ("pydantic", "boto3", "botocore", "aws_lambda_powertools")
# Reference imports, each in its own fresh interpreter. eventcraft.publisher is what the
# outbox relay's path needs besides the outbox module (it imports no contracts).
REFERENCES = {
    "interpreter (pass)": "",
    "pydantic": "pydantic",
    "boto3": "boto3",
    "eventcraft.publisher": "eventcraft.publisher",
}
# Imported by pydantic lazily, so -X importtime nests them under the project module
# that first touched a pydantic name: counted as pydantic.
PYDANTIC_DEPENDENCIES = frozenset({"pydantic_core", "annotated_types", "typing_inspection"})
_TIMER = "import time as _t\n_s = _t.perf_counter()\n{stmt}\nprint(repr(_t.perf_counter() - _s))\n"
_LINE = re.compile(r"^import time:\s+(\d+)\s+\|\s+(\d+)\s+\|( *)(\S+)\s*$")


def handler_names(handlers_dir: Path | None = None) -> list[str]:
    folder = handlers_dir or common.FUNCTIONS / "handlers"
    return sorted(p.stem for p in folder.glob("*.py") if p.stem != "__init__")


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    env["PYTHONPATH"] = str(common.FUNCTIONS)
    env["PYTHONHASHSEED"] = "0"
    return env


def _run(stmt: str, *, importtime: bool = False) -> tuple[float, float, str]:
    """(import seconds measured inside, whole process wall seconds, stderr)."""
    argv = [sys.executable]
    if importtime:
        argv += ["-X", "importtime"]
    argv += ["-c", _TIMER.format(stmt=stmt or "pass")]
    start = time.perf_counter()
    done = subprocess.run(
        argv,
        cwd=common.FUNCTIONS,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    wall = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"{stmt!r} failed in a fresh interpreter:\n{done.stderr[-2000:]}")
    return float(done.stdout.strip().splitlines()[-1]), wall, done.stderr


# ----------------------------------------------------------------- -X importtime tree


@dataclass
class Node:
    name: str
    self_us: int
    cumulative_us: int
    children: list[Node] = field(default_factory=list)


def parse_importtime(stderr: str) -> list[Node]:
    """The roots of the import tree printed by `-X importtime` (children are printed
    before their parent, one indentation level (2 spaces) deeper)."""
    pending: dict[int, list[Node]] = defaultdict(list)
    for line in stderr.splitlines():
        match = _LINE.match(line)
        if not match:
            continue
        self_us, cumulative_us, indent, name = match.groups()
        depth = (len(indent) - 1) // 2
        node = Node(name, int(self_us), int(cumulative_us), pending.pop(depth + 1, []))
        pending[depth].append(node)
    return pending.get(0, [])


def _walk(node: Node, parent: Node | None = None) -> Any:
    yield node, parent
    for child in node.children:
        yield from _walk(child, node)


def _top(name: str) -> str:
    return name.split(".", 1)[0]


def _find(roots: list[Node], name: str) -> Node | None:
    for root in roots:
        for node, _ in _walk(root):
            if node.name == name:
                return node
    return None


def heaviest_imports(root: Node) -> dict[str, dict[str, Any]]:
    """Cost per top-level package of one handler's tree, in µs.

    A library (third-party or stdlib) costs the cumulative time of the subtrees that
    project code imported directly (its own imports included; siblings never overlap),
    `via` naming the project modules that did. pydantic imports its submodules lazily:
    they (and its own dependencies) show up as imports of the project module that
    touched the name, and are all counted as pydantic. Stdlib modules imported that way
    by pydantic's lazy code stay under their own names. A project package costs the self time of
    its modules (their own top-level code: class bodies, pydantic model construction).
    """
    groups: dict[str, dict[str, Any]] = {}
    for node, parent in _walk(root):
        top = _top(node.name)
        if top in PROJECT_PACKAGES:
            group = groups.setdefault(f"{top} (own code)", {"us": 0, "via": set()})
            group["us"] += node.self_us
        elif parent is not None and _top(parent.name) in PROJECT_PACKAGES:
            top = "pydantic" if top in PYDANTIC_DEPENDENCIES else top
            group = groups.setdefault(top, {"us": 0, "via": set()})
            group["us"] += node.cumulative_us
            group["via"].add(parent.name)
    return groups


# ----------------------------------------------------------------- static import check


@dataclass(frozen=True)
class ImportedName:
    """One name bound by a module-level import statement."""

    importer: str  # the project module holding the statement
    target: str  # the module this name makes Python load
    name: str  # the name bound
    line: int


def _module_of(path: Path) -> str:
    relative = path.relative_to(common.FUNCTIONS).with_suffix("")
    parts = list(relative.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _path_of(module: str) -> Path | None:
    base = common.FUNCTIONS.joinpath(*module.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _resolve(module: str, node: ast.ImportFrom, is_package: bool) -> str:
    if not node.level:
        return node.module or ""
    base = module.split(".") if is_package else module.split(".")[:-1]
    if node.level > 1:
        base = base[: len(base) - (node.level - 1)]
    return ".".join([*base, node.module] if node.module else base)


def module_level_imports(path: Path) -> list[ImportedName]:
    """Imports executed when the module is imported (not under `if TYPE_CHECKING`)."""
    module = _module_of(path)
    is_package = path.name == "__init__.py"
    found: list[ImportedName] = []

    def block(statements: list[ast.stmt]) -> None:
        for stmt in statements:
            if isinstance(stmt, ast.Import):
                for alias in stmt.names:
                    bound = alias.asname or alias.name.split(".", 1)[0]
                    found.append(ImportedName(module, alias.name, bound, stmt.lineno))
            elif isinstance(stmt, ast.ImportFrom):
                source = _resolve(module, stmt, is_package)
                if source == "__future__":
                    continue
                for alias in stmt.names:
                    # `from eventcraft import outbox` loads the submodule eventcraft.outbox.
                    submodule = f"{source}.{alias.name}"
                    target = submodule if _path_of(submodule) else source
                    found.append(
                        ImportedName(module, target, alias.asname or alias.name, stmt.lineno)
                    )
            elif isinstance(stmt, ast.If):
                if not _is_type_checking(stmt.test):
                    block(stmt.body)
                block(stmt.orelse)
            elif isinstance(stmt, ast.Try):
                block(stmt.body)
                for handler in stmt.handlers:
                    block(handler.body)
                block(stmt.orelse)
                block(stmt.finalbody)

    block(ast.parse(path.read_text(encoding="utf-8")).body)
    return found


def runtime_names(path: Path) -> set[str]:
    """Names the module reads at run time: every load outside annotations and outside
    `if TYPE_CHECKING:`. Class-level annotations count (pydantic and dataclasses read
    them); function signature and local variable annotations do not (never evaluated
    under `from __future__ import annotations`); `__all__` entries count."""
    used: set[str] = set()

    def names_in(node: ast.AST | None) -> None:
        if node is not None:
            used.update(n.id for n in ast.walk(node) if isinstance(n, ast.Name))

    def visit(node: ast.AST, in_class: bool) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            for stmt in node.orelse:
                visit(stmt, in_class)
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            for expr in [*node.decorator_list, *node.args.defaults, *node.args.kw_defaults]:
                names_in(expr)
            for stmt in node.body:
                visit(stmt, False)
        elif isinstance(node, ast.ClassDef):
            for expr in [*node.decorator_list, *node.bases, *(k.value for k in node.keywords)]:
                names_in(expr)
            for stmt in node.body:
                visit(stmt, True)
        elif isinstance(node, ast.AnnAssign):
            if in_class:
                names_in(node.annotation)
            names_in(node.value)
        elif isinstance(node, ast.Name):
            used.add(node.id)
        else:
            if isinstance(node, ast.Assign) and any(
                isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets
            ):
                used.update(
                    c.value
                    for c in ast.walk(node.value)
                    if isinstance(c, ast.Constant) and isinstance(c.value, str)
                )
            for child in ast.iter_child_nodes(node):
                visit(child, in_class)

    for stmt in ast.parse(path.read_text(encoding="utf-8")).body:
        visit(stmt, False)
    return used


def _annotation_names(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        annotation: ast.expr | None = None
        if isinstance(node, ast.arg | ast.AnnAssign):
            annotation = node.annotation
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            annotation = node.returns
        if annotation is not None:
            names.update(n.id for n in ast.walk(annotation) if isinstance(n, ast.Name))
    return names


def _is_stdlib(module: str) -> bool:
    return _top(module) in sys.stdlib_module_names


def _with_parents(module: str) -> list[str]:
    parts = module.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts) + 1)]


@dataclass
class ImportGraph:
    """Module-level imports of the project modules one handler loads, each marked live
    (its name is read at run time, or it sits in a package `__init__`, or another
    module imports that name from here) or dead."""

    live: dict[str, list[ImportedName]]
    dead: dict[str, list[ImportedName]]
    kinds: dict[tuple[str, str], str]

    @classmethod
    def of(cls, modules: list[str]) -> ImportGraph:
        paths = {m: p for m in modules if (p := _path_of(m)) is not None}
        imported = {m: module_level_imports(p) for m, p in paths.items()}
        reexported = {(i.target, i.name) for items in imported.values() for i in items}
        live: dict[str, list[ImportedName]] = defaultdict(list)
        dead: dict[str, list[ImportedName]] = defaultdict(list)
        kinds: dict[tuple[str, str], str] = {}
        for module, items in imported.items():
            used = runtime_names(paths[module])
            annotated = _annotation_names(paths[module])
            is_package = paths[module].name == "__init__.py"
            for item in items:
                if is_package or item.name in used or (module, item.name) in reexported:
                    live[module].append(item)
                else:
                    dead[module].append(item)
                    kinds[(module, item.name)] = (
                        "annotation-only" if item.name in annotated else "unused"
                    )
        return cls(live, dead, kinds)

    def needed_from(self, root: str) -> set[str]:
        """Modules a run of `root` needs: reachable through live imports (a module's
        parent packages are loaded with it)."""
        needed = set(_with_parents(root))
        stack = list(needed)
        while stack:
            for item in self.live.get(stack.pop(), ()):
                for module in _with_parents(item.target):
                    if module not in needed:
                        needed.add(module)
                        stack.append(module)
        return needed


def _statement_cost(roots: list[Node], importer: str, target: str) -> int:
    """µs that loading `target` from `importer` cost in this tree (0 if something else
    had loaded it first)."""
    node = _find(roots, importer)
    if node is None:
        return 0
    return sum(
        child.cumulative_us
        for child in node.children
        if child.name == target
        or child.name.startswith(target + ".")
        or target.startswith(child.name + ".")
    )


def unneeded_imports(
    handler: str, loaded: set[str], forests: list[list[Node]]
) -> tuple[list[dict[str, Any]], list[str]]:
    """(findings, unneeded modules). A finding is a module-level import of a project or
    third-party module whose name is never read at run time, in the handler itself or
    in a project module it needs; `saving_ms` is what the import costs in the handler's
    tree when nothing that IS used needs the same module (else 0: removing it alone
    would not make the handler lighter). Unneeded modules: loaded, but not reachable
    through live imports."""
    project = sorted(m for m in loaded if _top(m) in PROJECT_PACKAGES)
    graph = ImportGraph.of(project)
    needed = graph.needed_from(handler)
    needed_tops = {_top(m) for m in needed}
    findings: list[dict[str, Any]] = []
    for module in sorted(needed):
        for item in graph.dead.get(module, ()):
            if _is_stdlib(item.target):
                continue
            required = (
                item.target in needed
                if _top(item.target) in PROJECT_PACKAGES
                else _top(item.target) in needed_tops
            )
            saving = 0.0
            if not required:
                saving = common.median([_statement_cost(f, module, item.target) for f in forests])
            if module != handler and saving <= 0:
                continue
            findings.append(
                {
                    "module": module,
                    "line": item.line,
                    "name": item.name,
                    "from": item.target,
                    "kind": graph.kinds[(module, item.name)],
                    "needed_anyway": required,
                    "saving_ms": saving / 1000,
                }
            )
    # Libraries project code imports directly (their own dependencies follow them).
    libraries = {
        _top(i.target)
        for items in (*graph.live.values(), *graph.dead.values())
        for i in items
        if not _is_stdlib(i.target) and _top(i.target) not in PROJECT_PACKAGES
    }
    unneeded = sorted(
        {m for m in loaded if _top(m) in PROJECT_PACKAGES and m not in needed}
        | {lib for lib in libraries if lib not in needed_tops and lib in {_top(m) for m in loaded}}
    )
    findings.sort(key=lambda f: (f["module"] != handler, -f["saving_ms"], f["line"]))
    return findings, unneeded


# ----------------------------------------------------------------- the benchmark


def run(
    *,
    runs: int = 5,
    importtime_runs: int = 2,
    handlers: list[str] | None = None,
    references: bool = True,
    top: int = 5,
) -> dict[str, Any]:
    """Cold-start figures per handler; sizes are parameters so the smoke test can run
    one handler once."""
    names = handlers if handlers is not None else handler_names()
    statements = {f"handlers.{n}": f"import handlers.{n}" for n in names}
    if references:
        statements.update(
            {label: (f"import {mod}" if mod else "") for label, mod in REFERENCES.items()}
        )

    for stmt in statements.values():  # warm-up: bytecode caches, page cache
        _run(stmt)
    import_s: dict[str, list[float]] = defaultdict(list)
    wall_s: dict[str, list[float]] = defaultdict(list)
    for _ in range(runs):
        for label, stmt in statements.items():
            inside, wall, _ = _run(stmt)
            import_s[label].append(inside)
            wall_s[label].append(wall)

    forests: dict[str, list[list[Node]]] = defaultdict(list)
    for _ in range(importtime_runs):
        for name in names:
            stderr = _run(f"import handlers.{name}", importtime=True)[2]
            forests[name].append(parse_importtime(stderr))

    results: dict[str, Any] = {}
    for name in names:
        module = f"handlers.{name}"
        roots = [r for r in (_find(f, module) for f in forests[name]) if r is not None]
        groups: dict[str, list[int]] = defaultdict(list)
        via: dict[str, set[str]] = defaultdict(set)
        loaded: set[str] = set()
        for root in roots:
            for package, group in heaviest_imports(root).items():
                groups[package].append(group["us"])
                via[package] |= group["via"]
            loaded.update(n.name for n, _ in _walk(root))
        heaviest: list[dict[str, Any]] = sorted(
            (
                {"package": package, "ms": common.median(v) / 1000, "via": sorted(via[package])}
                for package, v in groups.items()
            ),
            key=lambda g: -float(g["ms"]),
        )
        findings, unneeded = unneeded_imports(module, loaded, forests[name])
        results[name] = {
            "import": common.summary(import_s[module]),
            "process_wall": common.summary(wall_s[module]),
            "importtime_cumulative_ms": common.median([r.cumulative_us / 1000 for r in roots]),
            "libraries": {lib: any(_top(m) == lib for m in loaded) for lib in HEAVY_LIBRARIES},
            "modules_loaded": len(loaded),
            "heaviest_imports": heaviest[:top],
            "unused_imports": findings,
            "unneeded_modules": unneeded,
        }
    reference_rows = {
        label: {
            "import": common.summary(import_s[label]),
            "process_wall": common.summary(wall_s[label]),
        }
        for label in (REFERENCES if references else {})
    }
    return {
        "runs": runs,
        "importtime_runs": importtime_runs,
        "handlers": results,
        "references": reference_rows,
    }
