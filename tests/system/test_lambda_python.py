"""Every deployed handler imports on the Lambda runtime's Python, with only what Lambda
puts on its path: the code asset, the dependency layer (built for this machine's
architecture, x86_64 here, from the same requirements and handler library) and the
runtime's boto3. The sandbox runs handlers on the development Python, so this is the check that
the layer holds what the code imports on the Python version it is built for. The
durable saga's function has a runtime (python3.13) and a layer of its own (with the
durable SDK): its module is imported there.

The interpreter runs isolated (`-I -S`: no site-packages, no PYTHONPATH, no user site);
the layer and boto3 are built by `build_layer` (pip, from the package index) into
`.build/` and reused while their inputs are unchanged. Skipped without python3.12 /
python3.13.
"""

from __future__ import annotations

import importlib.metadata
import json
import platform
import shutil
import subprocess
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pulumi
import pytest

from order_saga.catalogue import (
    CODE_DIR,
    DLQ_PROCESSOR_HANDLER,
    DURABLE_PYTHON,
    DURABLE_REQUIREMENTS_FILE,
    DURABLE_SAGA_HANDLER,
    HANDLER_LIBRARY,
    LAYER_CACHE_DIR,
    RELAY_HANDLER,
    REQUIREMENTS_FILE,
    SWEEPER_HANDLER,
    function_specs,
)
from pulumi_eventcraft.function import code_archive
from pulumi_eventcraft.layer import build_layer
from tests.conftest import ROOT

LAMBDA_PYTHON = "3.12"  # the functions' runtime, python3.12


def _python(version: str) -> str | None:
    """pyenv's python`version` (any patch release), else one on PATH."""
    found = sorted((Path.home() / ".pyenv" / "versions").glob(f"{version}.*/bin/python"))
    return str(found[-1]) if found else shutil.which(f"python{version}")


PYTHON = _python(LAMBDA_PYTHON)
DURABLE_PYTHON_EXE = _python(DURABLE_PYTHON)
DURABLE_MODULE = DURABLE_SAGA_HANDLER.rpartition(".")[0]
# This machine's: the layer's binary wheels (pydantic-core) must load here.
ARCHITECTURE = {"x86_64": "x86_64", "aarch64": "arm64", "arm64": "arm64"}.get(platform.machine())
RUNTIME_CACHE_DIR = ROOT / ".build" / "lambda-runtime"

# Run by the Lambda Python: imports each module, reports the errors and any module
# that came from somewhere other than the given paths and the standard library.
IMPORT_ALL = """
import importlib, json, pkgutil, sys, sysconfig

paths, walked, skipped = json.loads(sys.argv[1])
sys.path[:0] = paths
modules = []
for package in walked:
    found = pkgutil.walk_packages(importlib.import_module(package).__path__, package + ".")
    modules += [package, *(info.name for info in found if info.name not in skipped)]
errors = {}
for name in modules:
    try:
        importlib.import_module(name)
    except Exception as exc:
        errors[name] = f"{type(exc).__name__}: {exc}"
stdlib = sysconfig.get_paths()
allowed = (*paths, stdlib["stdlib"], stdlib["platstdlib"])
elsewhere = sorted(
    name
    for name, module in list(sys.modules.items())
    if getattr(module, "__file__", None) and not module.__file__.startswith(allowed)
)
print(json.dumps({"python": "%d.%d" % sys.version_info[:2], "site": "site" in sys.modules,
                  "imported": modules, "errors": errors, "elsewhere": elsewhere}))
"""


def _extracted(zip_path: Path, target: Path) -> Path:
    with zipfile.ZipFile(zip_path) as archive:
        archive.extractall(target)
    return target / "python"


def _lambda_files(
    root: Path, python: str | None, version: str, requirements: Path
) -> dict[str, Path]:
    """The code asset, the layer built from `requirements` for Python `version` and the
    runtime's boto3, each extracted to a folder under `root`."""
    if python is None:
        pytest.skip(f"no python{version} (pyenv's or on PATH) to import the handlers with")
    if ARCHITECTURE is None:
        pytest.skip(f"Lambda has no {platform.machine()} architecture to build the layer for")
    task = root / "task"
    for relative, asset in code_archive(CODE_DIR).assets.items():
        assert isinstance(asset, pulumi.FileAsset)
        (task / relative).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(asset.path, task / relative)
    layer = build_layer(
        requirements, ARCHITECTURE, version, LAYER_CACHE_DIR, packages=(HANDLER_LIBRARY,)
    )
    # The runtime ships boto3 and its dependencies; the host's release of it here.
    runtime_requirements = root / "runtime-requirements.txt"
    runtime_requirements.write_text(f"boto3=={importlib.metadata.version('boto3')}\n")
    runtime = build_layer(runtime_requirements, ARCHITECTURE, version, RUNTIME_CACHE_DIR)
    return {
        "task": task,
        "layer": _extracted(layer, root / "opt"),
        "runtime": _extracted(runtime, root / "var-runtime"),
    }


@pytest.fixture(scope="module")
def lambda_path(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The functions' runtime (python3.12) and their shared layer."""
    root = tmp_path_factory.mktemp("lambda")
    return _lambda_files(root, PYTHON, LAMBDA_PYTHON, REQUIREMENTS_FILE)


@pytest.fixture(scope="module")
def durable_lambda_path(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The durable saga function's runtime (python3.13) and its own layer (with the SDK)."""
    root = tmp_path_factory.mktemp("durable-lambda")
    return _lambda_files(root, DURABLE_PYTHON_EXE, DURABLE_PYTHON, DURABLE_REQUIREMENTS_FILE)


def _import_on_lambda_python(
    paths: Sequence[Path], *, python: str | None = PYTHON, skipped: Sequence[str] = ()
) -> dict[str, Any]:
    """Every module of the handlers package and of the handler library (but `skipped`),
    imported on the Lambda Python from `paths` (in Lambda's order: task root, layers,
    runtime)."""
    argument = json.dumps([[str(p) for p in paths], ["handlers", "eventcraft"], list(skipped)])
    result = subprocess.run(
        [str(python), "-I", "-S", "-c", IMPORT_ALL, argument],
        env={"AWS_REGION": "us-east-1", "AWS_DEFAULT_REGION": "us-east-1", "LANG": "C.UTF-8"},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    report: dict[str, Any] = json.loads(result.stdout)
    return report


def _deployed_handler_modules() -> set[str]:
    """The modules of the handlers the system deploys (both sagas: every function)."""
    handlers = [s.handler for s in function_specs("both")]
    handlers += [RELAY_HANDLER, SWEEPER_HANDLER, DLQ_PROCESSOR_HANDLER]
    return {handler.rpartition(".")[0] for handler in handlers}


def test_every_deployed_handler_imports_on_the_lambda_python(
    lambda_path: dict[str, Path],
) -> None:
    report = _import_on_lambda_python(
        [lambda_path["task"], lambda_path["layer"], lambda_path["runtime"]],
        skipped=[DURABLE_MODULE],  # its own runtime and layer: the test below
    )
    assert (report["python"], report["site"]) == (LAMBDA_PYTHON, False)
    assert report["errors"] == {}
    assert report["elsewhere"] == []
    # Every deployed handler, and the handler library's modules (lazily imported ones too).
    assert _deployed_handler_modules() <= set(report["imported"])
    assert {"eventcraft.batch", "eventcraft.eventstore.dynamodb"} <= set(report["imported"])


def test_a_layer_without_powertools_fails_the_check_naming_the_module(
    lambda_path: dict[str, Path], tmp_path: Path
) -> None:
    """The check sees what the layer lacks: the same layer less Powertools (which the
    handler library imports; the handlers themselves only when it runs)."""
    layer = tmp_path / "python"
    shutil.copytree(
        lambda_path["layer"],
        layer,
        ignore=shutil.ignore_patterns("aws_lambda_powertools", "aws_lambda_powertools-*"),
    )
    paths = [lambda_path["task"], layer, lambda_path["runtime"]]
    errors = _import_on_lambda_python(paths, skipped=[DURABLE_MODULE])["errors"]
    assert {"eventcraft.batch", "eventcraft.idempotency"} <= set(errors)
    assert set(errors.values()) == {"ModuleNotFoundError: No module named 'aws_lambda_powertools'"}


def test_the_durable_saga_imports_on_its_runtime_with_its_own_layer(
    durable_lambda_path: dict[str, Path], tmp_path: Path
) -> None:
    """python3.13 and the durable layer (the SDK, and all the shared layer holds): the
    durable saga's module and everything it imports load from Lambda's paths only."""
    paths = [durable_lambda_path[k] for k in ("task", "layer", "runtime")]
    report = _import_on_lambda_python(paths, python=DURABLE_PYTHON_EXE)
    assert (report["python"], report["site"]) == (DURABLE_PYTHON, False)
    assert report["errors"] == {}
    assert report["elsewhere"] == []
    assert {DURABLE_MODULE, "eventcraft.durable_saga"} <= set(report["imported"])
    # The same layer less the SDK fails, naming the module: the layer is what holds it.
    without = tmp_path / "python"
    shutil.copytree(
        durable_lambda_path["layer"],
        without,
        ignore=shutil.ignore_patterns("aws_durable_execution_sdk_python*"),
    )
    paths = [durable_lambda_path["task"], without, durable_lambda_path["runtime"]]
    errors = _import_on_lambda_python(paths, python=DURABLE_PYTHON_EXE)["errors"]
    assert errors == {
        DURABLE_MODULE: "ModuleNotFoundError: No module named 'aws_durable_execution_sdk_python'"
    }
