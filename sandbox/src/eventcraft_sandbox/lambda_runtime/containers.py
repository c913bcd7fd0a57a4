"""Execution environments: code and layers extracted, the import guard, and
the swap of `sys.modules`, `sys.path`, `os.environ`, stdout/stderr and boto3's
default session in and out of the process around an invocation (and around each of
its chain's turns: `suspend` / `resume`, `interleaving`).

The import guard gives the function's own code (its zip's and its layers' modules) only
what Lambda would: its runtime's stdlib, the runtime's boto3 (`RUNTIME_PACKAGES`), its
zip and its layers (`Container.refuses`); the host's venv does not stand in for the
layer. Host code on the invocation's thread imports as on the host."""

from __future__ import annotations

import builtins
import contextlib
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
from types import FrameType, ModuleType
from typing import TYPE_CHECKING, Any, Final

from eventcraft_sandbox.lambda_runtime.function_spec import FunctionSpec
from eventcraft_sandbox.lambda_runtime.interface import LambdaRuntimeError
from eventcraft_sandbox.lambda_runtime.log_capture import demux
from eventcraft_sandbox.lambda_runtime.thread_state import STATE

if TYPE_CHECKING:
    from eventcraft_sandbox.lambda_runtime.interleaving import Chain
    from eventcraft_sandbox.lambda_runtime.invocation import Invocation


# ------------------------------------------------------------------ import guard

# What the Lambda python runtimes ship beside the standard library: the AWS SDK for
# Python and its dependencies ("The Lambda Python runtimes include the AWS SDK for
# Python (Boto3) and its dependencies"; `requests` is not among them since python3.8).
RUNTIME_PACKAGES: Final = frozenset(
    {"boto3", "botocore", "s3transfer", "jmespath", "dateutil", "six", "urllib3"}
)
# Standard-library modules a newer runtime no longer has, by the version that removed
# them (distutils and imp, PEP 594's dead batteries), in case the host is older.
_REMOVED_FROM_STDLIB: Final = {
    (3, 12): frozenset({"asynchat", "asyncore", "distutils", "imp", "smtpd"}),
    (3, 13): frozenset(
        {
            "aifc", "audioop", "cgi", "cgitb", "chunk", "crypt", "imghdr", "lib2to3",
            "mailcap", "msilib", "nis", "nntplib", "ossaudiodev", "pipes", "sndhdr",
            "spwd", "sunau", "telnetlib", "uu", "xdrlib",
        }
    ),
}  # fmt: skip


@functools.cache
def lambda_stdlib(runtime: str) -> frozenset[str]:
    """The top-level standard-library names a `python3.N` runtime has: the host's, less
    what versions up to 3.N removed."""
    names = set(sys.stdlib_module_names) | set(sys.builtin_module_names)
    try:
        version = tuple(int(part) for part in runtime.removeprefix("python").split("."))
    except ValueError:
        version = sys.version_info[:2]
    for removed_in, removed in _REMOVED_FROM_STDLIB.items():
        if version >= removed_in:
            names -= removed
    return frozenset(names)


@functools.cache
def _stdlib_prefixes() -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Where the host's standard library lives, and the site-packages inside it."""
    paths = sysconfig.get_paths()
    stdlib = {paths["stdlib"], paths["platstdlib"]}
    sites = {paths["purelib"], paths["platlib"], *site.getsitepackages()}

    def prefixes(dirs: set[str]) -> tuple[str, ...]:
        both = dirs | {os.path.realpath(d) for d in dirs}
        return tuple(d.rstrip(os.sep) + os.sep for d in sorted(both))

    return prefixes(stdlib), prefixes(sites)


def _imports_for_its_caller(filename: str) -> bool:
    """A frame that imports on its caller's behalf: importlib's and the rest of the
    standard library's (`importlib.import_module`, `pkgutil.resolve_name`,
    `logging.config`), or generated code ("<string>")."""
    if filename.startswith("<"):
        return True
    stdlib, sites = _stdlib_prefixes()
    return filename.startswith(stdlib) and not filename.startswith(sites)


class _ImportGuard(importlib.abc.MetaPathFinder):
    """On an invocation's thread, a fresh top-level import resolves in the container:
    the function's own code may import only what Lambda gives it (`Container.refuses`);
    host code (moto, botocore, the sandbox, a shared package) imports as on the host."""

    # What `install_import_guard` replaced (the guarded ones call them).
    host_import: Callable[..., ModuleType] = builtins.__import__
    host_import_module: Callable[..., ModuleType] = importlib.import_module

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
        container = invocation.container
        if container.refuses(fullname, sys._getframe(1)):
            raise ModuleNotFoundError(f"No module named '{fullname}'", name=fullname)
        # The container's path: its code, the host's stdlib and venv, its layers (its
        # own names load from there, per container). Not found there, host code's
        # import goes on to the host's `sys.path`.
        return importlib.machinery.PathFinder.find_spec(fullname, container.visible_path)


IMPORT_GUARD = _ImportGuard()


def _refuse(name: str, frame: FrameType | None) -> None:
    """Raise Lambda's ModuleNotFoundError if the running invocation's container refuses
    the top-level module of `name` to the code of `frame`."""
    invocation = STATE.invocation
    if invocation is not None:
        top = name.partition(".")[0]
        if invocation.container.refuses(top, frame):
            raise ModuleNotFoundError(f"No module named '{top}'", name=top)


def _guarded_import(
    name: str,
    globals: Mapping[str, object] | None = None,
    locals: Mapping[str, object] | None = None,
    fromlist: Sequence[str] | None = (),
    level: int = 0,
) -> ModuleType:
    """`builtins.__import__` while the runtime is installed: an import statement of the
    function's own code finds no module Lambda would not give it, even one the host
    process has already imported (moto's `requests`), which no finder is asked about."""
    if level == 0 and STATE.invocation is not None:  # the cheap test first: every import
        _refuse(name, sys._getframe(1))
    return IMPORT_GUARD.host_import(name, globals, locals, fromlist, level)


def _guarded_import_module(name: str, package: str | None = None) -> ModuleType:
    """`importlib.import_module` while the runtime is installed (as `_guarded_import`)."""
    if STATE.invocation is not None and not name.startswith("."):
        _refuse(name, sys._getframe(1))
    return IMPORT_GUARD.host_import_module(name, package)


def install_import_guard() -> None:
    """Put the import guard in place: the finder first on `sys.meta_path`,
    `builtins.__import__` and `importlib.import_module` (idempotent)."""
    if IMPORT_GUARD not in sys.meta_path:
        sys.meta_path.insert(0, IMPORT_GUARD)
    if builtins.__import__ is not _guarded_import:
        IMPORT_GUARD.host_import = builtins.__import__
        builtins.__import__ = _guarded_import
    if importlib.import_module is not _guarded_import_module:
        IMPORT_GUARD.host_import_module = importlib.import_module
        importlib.import_module = _guarded_import_module


def uninstall_import_guard() -> None:
    """Undo `install_import_guard` (idempotent; what someone installed over the guard
    stays, and the guard in it passes everything on outside invocations)."""
    with contextlib.suppress(ValueError):
        sys.meta_path.remove(IMPORT_GUARD)
    if builtins.__import__ is _guarded_import:
        builtins.__import__ = IMPORT_GUARD.host_import
    if importlib.import_module is _guarded_import_module:
        importlib.import_module = IMPORT_GUARD.host_import_module


@functools.cache
def runtime_paths() -> tuple[str, ...]:
    """The host's `sys.path` entries under its stdlib and its venv's site-packages:
    where a container finds the stdlib, the runtime's boto3 and the layers' packages
    shared with the host (what else the venv has is refused to the function's code)."""
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
    """One execution environment of one function version.

    `own_names`: the top-level names of its code and of its layers' packages that are
    its own (imported per container); `shared_names`: its layers' packages taken from
    the host (`shared_with_host`)."""

    def __init__(
        self,
        spec: FunctionSpec,
        code_dir: Path,
        layer_dirs: list[Path],
        own_names: frozenset[str],
        credentials: dict[str, str],
        *,
        shared_names: frozenset[str] = frozenset(),
    ) -> None:
        self.spec = spec
        self.code_dir = code_dir
        self.layer_dirs = layer_dirs
        self.own_names = own_names
        self.credentials = credentials
        self.visible_path = [str(code_dir), *runtime_paths(), *map(str, layer_dirs)]
        # What the function's own code may import without looking: the runtime's
        # stdlib and boto3, its code's and layers' packages.
        self.importable = lambda_stdlib(spec.runtime) | RUNTIME_PACKAGES | own_names | shared_names
        # Where its own code lives: a frame running a file under these is the function's.
        self.code_roots = tuple(str(d).rstrip(os.sep) + os.sep for d in (code_dir, *layer_dirs))
        self._own_path = [str(code_dir), *map(str, layer_dirs)]
        self._provided: dict[str, bool] = {}
        self.modules: dict[str, ModuleType] = {}
        self.boto3_session: Any = None
        self.handler: Callable[[Any, Any], Any] | None = None
        self.busy = False
        self.invocations = 0
        now = datetime.now(UTC)
        self.log_stream = f"{now:%Y/%m/%d}/[{spec.version}]{uuid.uuid4().hex}"
        self.log_stream_created = False

    def refuses(self, name: str, frame: FrameType | None) -> bool:
        """Whether top-level module `name`, imported from `frame`, is one Lambda would
        not find: the importer is the function's own code (a file of its code or its
        layers, found past the frames that import for their caller: importlib, the
        stdlib) and neither the runtime nor the code nor a layer has `name`. Host code
        (moto handling the function's request, botocore, the sandbox's hooks, a shared
        package importing its dependencies) is never refused."""
        if name in self.importable:
            return False
        while frame is not None and _imports_for_its_caller(frame.f_code.co_filename):
            frame = frame.f_back
        if frame is None or not frame.f_code.co_filename.startswith(self.code_roots):
            return False
        provided = self._provided.get(name)
        if provided is None:
            # A layer's name `top_level_names` does not list (a namespace package).
            spec = importlib.machinery.PathFinder.find_spec(name, self._own_path)
            provided = self._provided[name] = spec is not None
        return not provided


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
