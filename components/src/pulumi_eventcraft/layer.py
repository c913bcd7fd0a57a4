"""A Lambda layer holding the handlers' third-party dependencies, built for Lambda.

`build_layer` runs pip for the target platform (manylinux wheels for the function's
architecture and Python version, binary only, so nothing compiles for the build
machine by accident) and zips the result under `python/`, the path Lambda adds to
`sys.path`. The zip is cached under `<cache_dir>/<sha256>/layer.zip`, keyed by the
requirements file's bytes, the architecture and the Python version, so repeated
previews do not rebuild. A build happens in a temporary directory that is renamed into
place only when complete: a crash never leaves a half-built cache entry.

The zip is deterministic (sorted entries, fixed timestamps and modes), so the same
requirements give the same bytes on every machine and `pulumi preview` shows no diff.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import pulumi
import pulumi_aws as aws

from pulumi_eventcraft.function import scoped_name
from pulumi_eventcraft.tags import Tags, check_tags

Architecture = Literal["arm64", "x86_64"]
ARCHITECTURES: tuple[str, ...] = ("arm64", "x86_64")
# Relative: under the directory the program runs in (a Pulumi project's own folder).
DEFAULT_CACHE_DIR = Path(".build") / "layers"
# Bump when the build recipe changes, so old cache entries are not reused.
BUILD_RECIPE = "1"
# Lambda's limit for a layer uploaded directly (not through S3): 50 MB zipped.
MAX_DIRECT_UPLOAD_BYTES = 50 * 1024 * 1024
_MACHINE = {"arm64": "aarch64", "x86_64": "x86_64"}
# Lambda's python3.12+ runtimes run on Amazon Linux 2023 (glibc 2.34): manylinux2014
# (glibc 2.17) and manylinux_2_28 wheels both load there. pip does not widen
# manylinux_2_X tags to older ones by itself, so each accepted tag is named.
_PLATFORM_TAGS = ("manylinux2014_{m}", "manylinux_2_17_{m}", "manylinux_2_28_{m}")
_ZIP_DATE = (1980, 1, 1, 0, 0, 0)

PipRunner = Callable[[Sequence[str]], None]


class LayerBuildError(RuntimeError):
    """pip could not build the layer (a missing wheel for the platform, no network, ...)."""


def _run_pip(command: Sequence[str]) -> None:
    # A fixed argv (no shell): this interpreter, pip, and paths we built.
    result = subprocess.run(list(command), capture_output=True, text=True, check=False)  # noqa: S603
    if result.returncode != 0:
        tail = "\n".join((result.stderr or result.stdout).strip().splitlines()[-15:])
        raise LayerBuildError(
            f"pip failed ({result.returncode}) building the layer; if a package has no "
            f"wheel for this platform, pin a version that has one:\n{tail}"
        )


def _check_architecture(architecture: str) -> None:
    if architecture not in ARCHITECTURES:
        raise ValueError(
            f"architecture: {architecture!r} is not allowed; use one of {', '.join(ARCHITECTURES)}"
        )


def _check_packages(packages: Sequence[Path]) -> None:
    for package in packages:
        if not (package / "pyproject.toml").is_file():
            raise ValueError(
                f"packages: {package} is not a Python project (no pyproject.toml); give the "
                "folder of a package to build into the layer"
            )


def _check_python_version(python_version: str) -> None:
    match = re.fullmatch(r"3\.(\d+)", python_version)
    if not match or int(match.group(1)) < 12:
        raise ValueError(
            f"python_version: {python_version!r} is not supported; use '3.12' or newer "
            "(the Lambda python runtimes on Amazon Linux 2023)"
        )


def _source_files(package: Path) -> list[Path]:
    """A local project's files that make its wheel (no build output, no bytecode)."""
    skipped = {"__pycache__", "build", "dist", ".git"}
    return sorted(
        p
        for p in package.rglob("*")
        if p.is_file()
        and not skipped.intersection(p.relative_to(package).parts)
        and not any(part.endswith(".egg-info") for part in p.parts)
        and p.suffix not in (".pyc", ".pyo")
    )


def _requirements_files(
    path: Path, seen: frozenset[Path] = frozenset()
) -> list[tuple[Path, bytes]]:
    """`path` and the requirements files it includes (`-r` / `--requirement`, relative
    to it, as pip reads them), each with its bytes; an include cycle is read once."""
    resolved = path.resolve()
    if resolved in seen:
        return []
    text = resolved.read_bytes()
    found = [(resolved, text)]
    for line in text.decode().splitlines():
        words = line.split("#", 1)[0].split()
        if len(words) == 2 and words[0] in ("-r", "--requirement"):
            found += _requirements_files(resolved.parent / words[1], seen | {resolved})
    return found


def layer_hash(
    requirements_file: Path,
    architecture: str,
    python_version: str,
    packages: Sequence[Path] = (),
) -> str:
    """The cache key: sha256 of the requirements' bytes (and of the files they include
    with `-r`), each local package's files, the architecture and the Python version."""
    parts = [text for _, text in _requirements_files(Path(requirements_file))]
    for package in packages:
        for path in _source_files(Path(package)):
            parts += [path.relative_to(package).as_posix().encode(), path.read_bytes()]
    parts += [architecture.encode(), python_version.encode(), BUILD_RECIPE.encode()]
    digest = hashlib.sha256()
    for part in parts:
        digest.update(len(part).to_bytes(8, "big"))
        digest.update(part)
    return digest.hexdigest()


def wheel_command(package: Path, wheel_dir: Path) -> list[str]:
    """The pip invocation that builds a local project's wheel (without its dependencies,
    which the layer's install resolves for Lambda's platform)."""
    return [
        sys.executable,
        "-m",
        "pip",
        "wheel",
        "--quiet",
        "--disable-pip-version-check",
        "--no-input",
        "--no-deps",
        "--wheel-dir",
        str(wheel_dir),
        str(package),
    ]


def pip_command(
    requirements_file: Path,
    target: Path,
    architecture: str,
    python_version: str,
    wheels: Sequence[Path] = (),
) -> list[str]:
    """The pip invocation that installs Lambda-compatible wheels into `target`: the
    requirements and the given local wheels, with their dependencies."""
    machine = _MACHINE[architecture]
    platforms = [arg for tag in _PLATFORM_TAGS for arg in ("--platform", tag.format(m=machine))]
    return [
        sys.executable,
        "-m",
        "pip",
        "install",
        "--quiet",
        "--disable-pip-version-check",
        "--no-input",
        # Lambda never writes .pyc next to the code; bytecode from this machine is noise.
        "--no-compile",
        "--target",
        str(target),
        *platforms,
        "--implementation",
        "cp",
        "--python-version",
        python_version,
        "--only-binary=:all:",
        "-r",
        str(requirements_file),
        *map(str, wheels),
    ]


def _forget_build_paths(site: Path) -> None:
    """pip records where a local wheel came from (`direct_url.json`): a path of this
    machine that would make the zip differ between machines."""
    for direct_url in site.glob("*.dist-info/direct_url.json"):
        record = direct_url.parent / "RECORD"
        if record.is_file():
            lines = record.read_text().splitlines()
            entry = f"{direct_url.parent.name}/direct_url.json,"
            record.write_text("".join(f"{line}\n" for line in lines if not line.startswith(entry)))
        direct_url.unlink()


def _zip_tree(source: Path, zip_path: Path) -> None:
    """Zip `source` as `python/...`, deterministically, without bytecode or scripts."""
    files = sorted(
        p
        for p in source.rglob("*")
        if p.is_file()
        and "__pycache__" not in p.parts
        and p.suffix not in (".pyc", ".pyo")
        # Console scripts point at the build machine's interpreter: useless in Lambda.
        and p.relative_to(source).parts[0] != "bin"
    )
    with zipfile.ZipFile(zip_path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for path in files:
            info = zipfile.ZipInfo(
                "python/" + path.relative_to(source).as_posix(), date_time=_ZIP_DATE
            )
            info.external_attr = 0o644 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, path.read_bytes())


def build_layer(
    requirements_file: Path,
    architecture: str,
    python_version: str,
    cache_dir: Path,
    *,
    packages: Sequence[Path] = (),
    runner: PipRunner | None = None,
) -> Path:
    """Build (or reuse) the layer zip for these requirements and local packages (project
    folders whose wheels are built and installed with their dependencies); returns its
    path.

    The zip is `cache_dir/<layer_hash>/layer.zip`. When it exists, pip is not run.
    `runner` runs the pip command (default: a subprocess); tests inject their own.
    Raises ValueError for bad arguments and LayerBuildError when pip fails.
    """
    requirements_file = Path(requirements_file)
    _check_architecture(architecture)
    _check_python_version(python_version)
    if not requirements_file.is_file():
        raise ValueError(f"requirements_file: {requirements_file} does not exist")
    packages = [Path(p) for p in packages]
    _check_packages(packages)
    cache_dir = Path(cache_dir)
    entry = cache_dir / layer_hash(requirements_file, architecture, python_version, packages)
    zip_path = entry / "layer.zip"
    if zip_path.is_file():
        return zip_path

    cache_dir.mkdir(parents=True, exist_ok=True)
    # A sibling temp dir, so the final rename stays on one filesystem (atomic).
    work = Path(tempfile.mkdtemp(prefix=f".{entry.name[:12]}-", dir=cache_dir))
    try:
        site = work / "site"
        wheel_dir = work / "wheels"
        for package in packages:
            (runner or _run_pip)(wheel_command(package, wheel_dir))
        wheels = sorted(wheel_dir.glob("*.whl")) if packages else []
        install = pip_command(requirements_file, site, architecture, python_version, wheels)
        (runner or _run_pip)(install)
        _forget_build_paths(site)
        staged = work / "entry"
        staged.mkdir()
        _zip_tree(site, staged / "layer.zip")
        size = (staged / "layer.zip").stat().st_size
        if size > MAX_DIRECT_UPLOAD_BYTES:
            raise LayerBuildError(
                f"the layer zip is {size / 1e6:.1f} MB; Lambda takes at most 50 MB uploaded "
                "directly: trim the requirements"
            )
        try:
            os.rename(staged, entry)
        except OSError:
            # Another build finished first: its entry is complete, so use it.
            if not zip_path.is_file():
                raise
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return zip_path


@dataclass(frozen=True, kw_only=True)
class DependencyLayerArgs:
    """Arguments of a `DependencyLayer`.

    - `requirements_file`: the pip requirements file of the layer, no default.
    - `packages`: () (default); local Python projects (folders with a pyproject.toml,
      such as a handler library of your own) whose wheels go into the layer, their
      dependencies resolved for Lambda's platform with the requirements.
    - `architecture`: "arm64" (default) or "x86_64"; must match the functions using it.
    - `python_version`: "3.12" (default); "3.12" or newer.
    - `cache_dir`: where built zips are kept; default `.build/layers` under the
      working directory (the Pulumi project's folder when run by the CLI).
    - `tags`: None (default); checked and kept for uniformity: a layer version takes
      no tags.
    """

    requirements_file: Path
    packages: Sequence[Path] = ()
    architecture: Architecture = "arm64"
    python_version: str = "3.12"
    cache_dir: Path = DEFAULT_CACHE_DIR
    runner: PipRunner | None = field(default=None, repr=False)
    tags: Tags = None

    def __post_init__(self) -> None:
        check_tags("DependencyLayerArgs", self.tags)
        _check_architecture(self.architecture)
        _check_python_version(self.python_version)
        if not Path(self.requirements_file).is_file():
            raise ValueError(f"requirements_file: {self.requirements_file} does not exist")
        _check_packages([Path(p) for p in self.packages])

    @property
    def runtime(self) -> str:
        """The Lambda runtime identifier, e.g. "python3.12"."""
        return f"python{self.python_version}"


class DependencyLayer(pulumi.ComponentResource):
    """A Lambda layer version of the requirements (`eventcraft:index:DependencyLayer`).

    The zip is built when the component is declared (cached across previews).
    Attributes: `layer_version`, `arn` (the version ARN functions reference),
    `zip_path`, `architecture`, `python_version`, `runtime`.
    """

    layer_version: aws.lambda_.LayerVersion
    arn: pulumi.Output[str]

    def __init__(
        self,
        name: str,
        args: DependencyLayerArgs,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("eventcraft:index:DependencyLayer", name, None, opts)
        self.architecture: str = args.architecture
        self.python_version: str = args.python_version
        self.runtime: str = args.runtime
        self.zip_path = build_layer(
            Path(args.requirements_file),
            args.architecture,
            args.python_version,
            Path(args.cache_dir),
            packages=args.packages,
            runner=args.runner,
        )
        digest = self.zip_path.parent.name
        self.layer_version = aws.lambda_.LayerVersion(
            f"{name}-layer",
            layer_name=scoped_name(name, max_length=140),
            description=(
                f"{Path(args.requirements_file).name} for {args.runtime} {args.architecture} "
                f"(sha256 {digest[:12]})"
            ),
            code=pulumi.FileArchive(str(self.zip_path)),
            compatible_runtimes=[args.runtime],
            compatible_architectures=[args.architecture],
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.arn = self.layer_version.arn
        self.register_outputs({"arn": self.arn})
