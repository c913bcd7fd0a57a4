"""DependencyLayer: a real arm64 build from PyPI (once per session), the cache, the resource."""

from __future__ import annotations

import itertools
import re
import zipfile
from collections.abc import Sequence
from pathlib import Path

import pytest

from eventcraft_sandbox.mock_deploy import RecordingMocks, deploy
from pulumi_eventcraft.layer import (
    DependencyLayer,
    DependencyLayerArgs,
    LayerBuildError,
    _run_pip,
    build_layer,
    layer_hash,
    pip_command,
)

ROOT = Path(__file__).resolve().parents[2]
REQUIREMENTS = ROOT / "functions" / "requirements.txt"


class CountingRunner:
    """Runs pip for real and counts the runs."""

    def __init__(self) -> None:
        self.commands: list[list[str]] = []

    def __call__(self, command: Sequence[str]) -> None:
        self.commands.append(list(command))
        _run_pip(command)


def refuse_to_run(command: Sequence[str]) -> None:
    raise AssertionError(f"pip ran although the layer is cached: {command}")


def fake_pip(command: Sequence[str]) -> None:
    """Installs one fake pure-Python package where pip would, without the network."""
    target = Path(command[command.index("--target") + 1])
    (target / "fakepkg").mkdir(parents=True)
    (target / "fakepkg" / "__init__.py").write_text("VALUE = 1\n")
    (target / "fakepkg" / "__pycache__").mkdir()
    (target / "fakepkg" / "__pycache__" / "__init__.cpython-312.pyc").write_bytes(b"\0")
    (target / "bin").mkdir()
    (target / "bin" / "fake").write_text("#!/usr/bin/python\n")


@pytest.fixture(scope="session")
def arm64_build(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, CountingRunner]:
    """(cache dir, zip path, runner): the real layer, built once for the whole session."""
    cache = tmp_path_factory.mktemp("layers")
    runner = CountingRunner()
    zip_path = build_layer(REQUIREMENTS, "arm64", "3.12", cache, runner=runner)
    return cache, zip_path, runner


def test_arm64_layer_holds_aarch64_wheels_under_python(
    arm64_build: tuple[Path, Path, CountingRunner],
) -> None:
    cache, zip_path, runner = arm64_build
    assert len(runner.commands) == 1
    assert zip_path == cache / layer_hash(REQUIREMENTS, "arm64", "3.12") / "layer.zip"
    names = zipfile.ZipFile(zip_path).namelist()
    assert all(n.startswith("python/") for n in names)
    so_files = [n for n in names if n.endswith(".so")]
    assert "python/pydantic_core/_pydantic_core.cpython-312-aarch64-linux-gnu.so" in so_files
    assert not [n for n in so_files if "x86_64" in n or "aarch64" not in n]
    assert not [n for n in names if n.endswith(".pyc") or "/__pycache__/" in n]
    assert not [n for n in names if n.startswith("python/bin/")]
    assert any(n.startswith("python/aws_lambda_powertools/") for n in names)


def test_every_wheel_is_pure_or_manylinux_aarch64_cp312(
    arm64_build: tuple[Path, Path, CountingRunner],
) -> None:
    archive = zipfile.ZipFile(arm64_build[1])
    wheels = {
        name.split("/")[1]: re.findall(r"^Tag: (\S+)$", archive.read(name).decode(), re.M)
        for name in archive.namelist()
        if name.endswith(".dist-info/WHEEL")
    }
    assert any(dist.startswith("pydantic_core-") for dist in wheels)
    for dist, tags in wheels.items():
        assert tags, dist
        for tag in tags:
            assert tag == "py3-none-any" or re.fullmatch(
                r"cp312-cp312-manylinux(2014|_2_\d+)_aarch64", tag
            ), (dist, tag)
    pydantic_core = next(tags for dist, tags in wheels.items() if dist.startswith("pydantic_core"))
    assert "cp312-cp312-manylinux2014_aarch64" in pydantic_core


def test_second_build_reuses_the_cache(arm64_build: tuple[Path, Path, CountingRunner]) -> None:
    cache, zip_path, runner = arm64_build
    before = zip_path.stat().st_mtime_ns
    again = build_layer(REQUIREMENTS, "arm64", "3.12", cache, runner=refuse_to_run)
    assert again == zip_path
    assert zip_path.stat().st_mtime_ns == before
    assert len(runner.commands) == 1


def test_pip_targets_lambda_platform_binary_only(tmp_path: Path) -> None:
    command = pip_command(REQUIREMENTS, tmp_path / "t", "arm64", "3.12")
    assert command[1:4] == ["-m", "pip", "install"]
    pairs = list(itertools.pairwise(command))
    assert ("--target", str(tmp_path / "t")) in pairs
    assert ("--platform", "manylinux2014_aarch64") in pairs
    assert ("--implementation", "cp") in pairs
    assert ("--python-version", "3.12") in pairs
    assert ("-r", str(REQUIREMENTS)) in pairs
    assert "--only-binary=:all:" in command
    x86 = pip_command(REQUIREMENTS, tmp_path / "t", "x86_64", "3.12")
    assert [a for a in x86 if a.startswith("manylinux")] == [
        "manylinux2014_x86_64",
        "manylinux_2_17_x86_64",
        "manylinux_2_28_x86_64",
    ]


def test_a_change_in_an_included_requirements_file_gives_a_new_hash(tmp_path: Path) -> None:
    """pip reads `-r base.txt` too: the layer built from it is stale when it changes."""
    base = tmp_path / "base.txt"
    base.write_text("pydantic>=2.13,<3\n")
    extended = tmp_path / "extended.txt"
    extended.write_text("-r base.txt  # the shared packages\nfakepkg==1\n")
    first = layer_hash(extended, "arm64", "3.13")
    base.write_text("pydantic>=2.14,<3\n")
    assert layer_hash(extended, "arm64", "3.13") != first
    # An include cycle is read once, not forever.
    base.write_text("--requirement extended.txt\n")
    assert layer_hash(extended, "arm64", "3.13") == layer_hash(extended, "arm64", "3.13")


def test_changed_requirements_architecture_or_python_give_a_new_hash(tmp_path: Path) -> None:
    req = tmp_path / "requirements.txt"
    req.write_text("pydantic>=2.13,<3\n")
    first = layer_hash(req, "arm64", "3.12")
    assert layer_hash(req, "x86_64", "3.12") != first
    assert layer_hash(req, "arm64", "3.13") != first
    req.write_text("pydantic>=2.13,<3\nfakepkg==1\n")
    assert layer_hash(req, "arm64", "3.12") != first
    calls: list[Sequence[str]] = []

    def runner(command: Sequence[str]) -> None:
        calls.append(command)
        fake_pip(command)

    built = build_layer(req, "arm64", "3.12", tmp_path / "cache", runner=runner)
    assert built.parent.name == layer_hash(req, "arm64", "3.12")
    assert len(calls) == 1
    # Bytecode and console scripts are left out.
    assert zipfile.ZipFile(built).namelist() == ["python/fakepkg/__init__.py"]


def test_zip_is_deterministic(tmp_path: Path) -> None:
    a = build_layer(REQUIREMENTS, "x86_64", "3.12", tmp_path / "a", runner=fake_pip)
    b = build_layer(REQUIREMENTS, "x86_64", "3.12", tmp_path / "b", runner=fake_pip)
    assert a.read_bytes() == b.read_bytes()


def test_a_failed_build_leaves_no_cache_entry(tmp_path: Path) -> None:
    cache = tmp_path / "cache"

    def crash(command: Sequence[str]) -> None:
        fake_pip(command)  # half the files are there when it fails
        raise LayerBuildError("pip failed (1) building the layer")

    with pytest.raises(LayerBuildError, match="pip failed"):
        build_layer(REQUIREMENTS, "arm64", "3.12", cache, runner=crash)
    assert list(cache.iterdir()) == []
    # The next build starts from scratch and succeeds.
    built = build_layer(REQUIREMENTS, "arm64", "3.12", cache, runner=fake_pip)
    assert [p.name for p in cache.iterdir()] == [built.parent.name]


def test_pip_failure_says_what_to_do(tmp_path: Path) -> None:
    req = tmp_path / "requirements.txt"
    req.write_text("this-package-does-not-exist-order-saga==0.0.1\n")
    with pytest.raises(LayerBuildError, match="pin a version that has one"):
        build_layer(req, "arm64", "3.12", tmp_path / "cache")
    assert [p for p in (tmp_path / "cache").iterdir()] == []


def test_layer_version_resource(arm64_build: tuple[Path, Path, CountingRunner]) -> None:
    cache, zip_path, _ = arm64_build
    layers: list[DependencyLayer] = []

    def program() -> None:
        layers.append(
            DependencyLayer(
                "deps",
                DependencyLayerArgs(
                    requirements_file=REQUIREMENTS, cache_dir=cache, runner=refuse_to_run
                ),
            )
        )

    d = deploy(program)
    component = d.named("deps", "eventcraft:index:DependencyLayer")
    version = d.named("deps-layer", "aws:lambda/layerVersion:LayerVersion")
    assert version.parent == component.urn
    assert version.inputs["layerName"] == "project-dev-deps"
    assert version.inputs["compatibleRuntimes"] == ["python3.12"]
    assert version.inputs["compatibleArchitectures"] == ["arm64"]
    assert version.inputs["code"].path == str(zip_path)
    assert version.inputs["description"].startswith("requirements.txt for python3.12 arm64")
    layer = layers[0]
    assert (layer.architecture, layer.python_version, layer.runtime) == (
        "arm64",
        "3.12",
        "python3.12",
    )


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"architecture": "arm"}, "architecture: 'arm' is not allowed; use one of arm64, x86_64"),
        ({"python_version": "3.11"}, "python_version: '3.11' is not supported; use '3.12'"),
        ({"python_version": "python3.12"}, "python_version: 'python3.12' is not supported"),
        ({"requirements_file": Path("/nope/requirements.txt")}, "requirements_file: /nope/"),
    ],
)
def test_refuses_bad_args_before_building(kwargs: dict[str, object], message: str) -> None:
    recorder = RecordingMocks()
    with pytest.raises(ValueError, match=re.escape(message)):
        deploy(
            lambda: DependencyLayer(
                "deps",
                DependencyLayerArgs(  # type: ignore[arg-type]
                    **{"requirements_file": REQUIREMENTS, "runner": refuse_to_run, **kwargs}
                ),
            ),
            mocks=recorder,
        )
    assert recorder.registrations == []


def test_the_requirements_file_is_an_argument_and_the_cache_is_under_the_working_dir() -> None:
    with pytest.raises(TypeError, match="'requirements_file'"):
        DependencyLayerArgs()  # type: ignore[call-arg]
    args = DependencyLayerArgs(requirements_file=REQUIREMENTS)
    assert args.cache_dir == Path(".build") / "layers"
    assert not args.cache_dir.is_absolute()


HANDLER_LIBRARY = ROOT / "eventcraft"


@pytest.fixture(scope="session")
def library_build(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, CountingRunner]:
    """The layer of the handlers' requirements plus the handler library's own wheel."""
    cache = tmp_path_factory.mktemp("library-layers")
    runner = CountingRunner()
    zip_path = build_layer(
        REQUIREMENTS, "arm64", "3.12", cache, packages=[HANDLER_LIBRARY], runner=runner
    )
    return zip_path, runner


def test_a_local_package_goes_into_the_layer_from_its_wheel(
    library_build: tuple[Path, CountingRunner],
) -> None:
    zip_path, runner = library_build
    wheel, install = runner.commands
    assert wheel[3:4] == ["wheel"] and wheel[-1] == str(HANDLER_LIBRARY)
    [built] = [arg for arg in install if arg.endswith(".whl")]
    assert Path(built).name.startswith("eventcraft-0.1.0-py3-none-any")
    names = set(zipfile.ZipFile(zip_path).namelist())
    assert "python/eventcraft/__init__.py" in names
    assert "python/eventcraft/publisher.py" in names
    # Its dependencies are resolved for Lambda's platform beside the requirements.
    assert any(re.match(r"python/pydantic_core/_pydantic_core\..*aarch64", n) for n in names)
    # No path of the building machine is left in the zip.
    assert not [n for n in names if n.endswith("direct_url.json")]
    record = next(n for n in names if re.match(r"python/eventcraft-[^/]+\.dist-info/RECORD$", n))
    assert "direct_url.json" not in zipfile.ZipFile(zip_path).read(record).decode()


def test_the_cache_key_follows_the_local_package_sources(tmp_path: Path) -> None:
    package = tmp_path / "lib"
    (package / "src" / "lib").mkdir(parents=True)
    (package / "pyproject.toml").write_text("[project]\nname = 'lib'\nversion = '1'\n")
    module = package / "src" / "lib" / "__init__.py"
    module.write_text("A = 1\n")
    first = layer_hash(REQUIREMENTS, "arm64", "3.12", [package])
    assert first != layer_hash(REQUIREMENTS, "arm64", "3.12")
    # Bytecode and build output do not count; the sources do.
    (package / "build").mkdir()
    (package / "build" / "junk.py").write_text("x")
    (package / "src" / "lib" / "__pycache__").mkdir()
    (package / "src" / "lib" / "__pycache__" / "x.pyc").write_bytes(b"\0")
    assert layer_hash(REQUIREMENTS, "arm64", "3.12", [package]) == first
    module.write_text("A = 2\n")
    assert layer_hash(REQUIREMENTS, "arm64", "3.12", [package]) != first


def test_a_package_without_a_pyproject_is_refused_by_name(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"packages: .*not a Python project"):
        DependencyLayerArgs(requirements_file=REQUIREMENTS, packages=[tmp_path])
