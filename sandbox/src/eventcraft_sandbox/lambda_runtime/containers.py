"""Execution environments: code and layers extracted, the import guard, and
the swap of `sys.modules`, `sys.path`, `os.environ`, stdout/stderr and boto3's
default session in and out of the process around an invocation (and around each of
its chain's turns: `suspend` / `resume`, `interleaving`)."""

from __future__ import annotations

import functools
import importlib
import importlib.abc
import importlib.machinery
import importlib.metadata
import io
import os
import shutil
import site
import sys
import sysconfig
import tempfile
import uuid
import zipfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

from eventcraft_sandbox.lambda_runtime.function_spec import FunctionSpec
from eventcraft_sandbox.lambda_runtime.interface import LambdaRuntimeError
from eventcraft_sandbox.lambda_runtime.log_capture import demux
from eventcraft_sandbox.lambda_runtime.thread_state import STATE

if TYPE_CHECKING:
    from eventcraft_sandbox.lambda_runtime.interleaving import Chain
    from eventcraft_sandbox.lambda_runtime.invocation import Invocation


# ------------------------------------------------------------------ import guard


class _ImportGuard(importlib.abc.MetaPathFinder):
    """On an invocation's thread, top-level imports resolve only where Lambda would
    find them: the code, the stdlib, the venv (the dependency layer), the layers."""

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        invocation = STATE.invocation
        if invocation is None or path is not None or "." in fullname:
            return None
        if (
            importlib.machinery.BuiltinImporter.find_spec(fullname) is not None
            or importlib.machinery.FrozenImporter.find_spec(fullname) is not None
        ):
            return None
        spec = importlib.machinery.PathFinder.find_spec(fullname, invocation.container.visible_path)
        if spec is None:
            raise ModuleNotFoundError(f"No module named '{fullname}'", name=fullname)
        return spec


IMPORT_GUARD = _ImportGuard()


@functools.cache
def runtime_paths() -> tuple[str, ...]:
    """The host's `sys.path` entries a Lambda runtime also has: stdlib and venv."""
    names = ("stdlib", "platstdlib", "purelib", "platlib")
    roots = {Path(p).resolve() for n, p in sysconfig.get_paths().items() if n in names}
    roots |= {Path(p).resolve() for p in site.getsitepackages()}
    roots.add(Path(sys.base_prefix).resolve() / "lib")
    kept = []
    for entry in sys.path:
        if not entry:
            continue
        resolved = Path(entry).resolve()
        if any(resolved == root or root in resolved.parents for root in roots):
            kept.append(entry)
    return tuple(dict.fromkeys(kept))


# -------------------------------------------------------------------- containers


def extract(code: bytes, target: Path) -> None:
    """Unzip `code` into `target` (created whole: a partial dir is never left there)."""
    staging = Path(tempfile.mkdtemp(prefix=".extract-", dir=target.parent))
    try:
        with zipfile.ZipFile(io.BytesIO(code)) as archive:
            for member in archive.infolist():
                destination = (staging / member.filename).resolve()
                if staging.resolve() not in destination.parents and destination != staging:
                    raise LambdaRuntimeError(f"zip entry {member.filename!r} escapes the code dir")
            archive.extractall(staging)  # members checked above
        staging.rename(target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def top_level_names(directory: Path) -> set[str]:
    """The importable top-level names a code or layer directory provides."""
    names: set[str] = set()
    if not directory.is_dir():
        return names
    for entry in directory.iterdir():
        if entry.name.startswith((".", "__pycache__")) or entry.name.endswith(
            (".dist-info", ".egg-info")
        ):
            continue
        if entry.is_dir():
            if entry.name.isidentifier() and any(entry.rglob("*.py")):
                names.add(entry.name)
        elif entry.suffix in (".py", ".so", ".pyd"):
            stem = entry.name.split(".", 1)[0]
            if stem.isidentifier():
                names.add(stem)
    return names


def _top_level_of(dist: importlib.metadata.Distribution) -> set[str]:
    listed = dist.read_text("top_level.txt")
    if listed:
        return {name for name in listed.split() if name.isidentifier()}
    first = {Path(str(f)).parts[0] for f in dist.files or ()}
    return {
        name.removesuffix(".py")
        for name in first
        if not name.endswith((".dist-info", ".data")) and name.removesuffix(".py").isidentifier()
    }


@functools.cache
def _host_packages() -> dict[str, tuple[str, str]]:
    """Top-level name -> (distribution, version) of what the host's runtime paths have
    from a package index (PEP 610: no `direct_url.json`); local and editable installs,
    a project's own code, are left out."""
    found: dict[str, tuple[str, str]] = {}
    for dist in importlib.metadata.distributions(path=list(runtime_paths())):
        if dist.read_text("direct_url.json") is not None:
            continue
        for name in _top_level_of(dist):
            found.setdefault(name, (dist.metadata["Name"].lower(), dist.version))
    return found


def shared_with_host(layer_dir: Path) -> set[str]:
    """The layer's top-level packages a container may take from the host instead: the
    same distribution at the same version, installed on the host from an index. Every
    other package of the layer is the function's own, imported per container, as each
    Lambda function has a process of its own (module state such as cached clients is
    never shared between functions)."""
    host = _host_packages()
    shared: set[str] = set()
    for dist in importlib.metadata.distributions(path=[str(layer_dir)]):
        release = (dist.metadata["Name"].lower(), dist.version)
        shared |= {name for name in _top_level_of(dist) if host.get(name) == release}
    return shared


def layer_python_dirs(root: Path) -> list[Path]:
    """Where Lambda puts a layer on the path: /opt/python and its site-packages."""
    python = root / "python"
    dirs = [python] if python.is_dir() else []
    dirs += sorted(python.glob("lib/python3.*/site-packages"))
    return dirs


class Container:
    """One execution environment of one function version."""

    def __init__(
        self,
        spec: FunctionSpec,
        code_dir: Path,
        layer_dirs: list[Path],
        own_names: frozenset[str],
        credentials: dict[str, str],
    ) -> None:
        self.spec = spec
        self.code_dir = code_dir
        self.layer_dirs = layer_dirs
        self.own_names = own_names
        self.credentials = credentials
        self.visible_path = [str(code_dir), *runtime_paths(), *map(str, layer_dirs)]
        self.modules: dict[str, ModuleType] = {}
        self.boto3_session: Any = None
        self.handler: Callable[[Any, Any], Any] | None = None
        self.busy = False
        self.invocations = 0
        now = datetime.now(UTC)
        self.log_stream = f"{now:%Y/%m/%d}/[{spec.version}]{uuid.uuid4().hex}"
        self.log_stream_created = False


@dataclass
class _Swap:
    """What one invocation set aside in the process, to put back afterwards."""

    invocation: Invocation
    modules: dict[str, ModuleType]
    path: list[str]
    environ: dict[str, str]
    stdout: Any
    stderr: Any
    boto3_session: Any


@dataclass
class Parked:
    """An invocation's process-wide state while its chain waits for its turn: its
    environment and path as its code left them (its modules and boto3 session stay in
    its container)."""

    invocation: Invocation
    environ: dict[str, str]
    path: list[str]


# An invocation's swaps live on its chain (`interleaving.Chain.swaps`, innermost last):
# only the chain holding the baton has its swaps in place.


def _own(name: str, own_names: frozenset[str]) -> bool:
    return name.partition(".")[0] in own_names


def swap_in(
    invocation: Invocation, environ: Mapping[str, str], *, path: list[str] | None = None
) -> None:
    """Put the invocation's container in place (its modules, environment, boto3 session,
    and `path`, or the host's with its code and layers added)."""
    import boto3

    container = invocation.container
    own = container.own_names
    set_aside = {n: m for n, m in list(sys.modules.items()) if _own(n, own)}
    for name in set_aside:
        sys.modules.pop(name, None)
    sys.modules.update(container.modules)
    swap = _Swap(
        invocation=invocation,
        modules=set_aside,
        path=list(sys.path),
        environ=dict(os.environ),
        stdout=sys.stdout,
        stderr=sys.stderr,
        boto3_session=boto3.DEFAULT_SESSION,
    )
    invocation.chain.swaps.append(swap)
    if path is None:
        sys.path[:0] = [str(container.code_dir)]
        sys.path.extend(str(d) for d in container.layer_dirs)
    else:
        sys.path[:] = path
    os.environ.clear()
    os.environ.update(environ)
    sys.stdout, sys.stderr = demux(sys.stdout), demux(sys.stderr)
    # botocore caches resolved credentials in a session: each container has its own
    # default session, created from its own environment on first use.
    boto3.DEFAULT_SESSION = container.boto3_session


def _undo_swap(swap: _Swap) -> None:
    import boto3

    container = swap.invocation.container
    own = container.own_names
    current = {n: m for n, m in list(sys.modules.items()) if _own(n, own)}
    for name in current:
        sys.modules.pop(name, None)
    container.modules = current
    container.boto3_session = boto3.DEFAULT_SESSION
    sys.modules.update(swap.modules)
    sys.path[:] = swap.path
    os.environ.clear()
    os.environ.update(swap.environ)
    sys.stdout, sys.stderr = swap.stdout, swap.stderr
    boto3.DEFAULT_SESSION = swap.boto3_session


def swap_out(invocation: Invocation) -> None:
    """Undo `invocation`'s swap, and first any nested one still in place (an outer
    invocation that timed out while an inner one ran: the inner one is frozen too)."""
    chain = invocation.chain
    with chain.lock:
        swaps = chain.swaps
        if not any(s.invocation is invocation for s in swaps):
            return
        while swaps:
            swap = swaps.pop()
            if swap.invocation is not invocation:
                swap.invocation.freeze()
            _undo_swap(swap)
            if swap.invocation is invocation:
                return


def suspend(chain: Chain) -> None:
    """Set the chain's swaps aside, innermost first, keeping each invocation's
    environment and path as its code left them (call with `chain.lock` held, on the
    chain's turn)."""
    parked: list[Parked] = []
    while chain.swaps:
        swap = chain.swaps[-1]
        parked.append(Parked(swap.invocation, dict(os.environ), list(sys.path)))
        chain.swaps.pop()
        _undo_swap(swap)
    chain.suspended = parked[::-1]


def resume(chain: Chain) -> None:
    """Put a suspended chain's swaps back, outermost first (its turn has come)."""
    parked, chain.suspended = chain.suspended, []
    for entry in parked:
        swap_in(entry.invocation, entry.environ, path=entry.path)
