"""Every deployed handler imports on the Lambda runtime's Python, with only what Lambda
puts on its path: the code asset, the dependency layer (built for this machine's
architecture, x86_64 here, from the same requirements and handler library) and the
runtime's boto3. The sandbox runs handlers on the development Python, so this is the check that
the layer holds what the code imports on the Python version it is built for.

The interpreter runs isolated (`-I -S`: no site-packages, no PYTHONPATH, no user site);
the layer and boto3 are built by `build_layer` (pip, from the package index) into
`.build/` and reused while their inputs are unchanged. Skipped without python3.12.
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
_PYENV = Path.home() / ".pyenv" / "versions" / "3.12.1" / "bin" / "python"
PYTHON = str(_PYENV) if _PYENV.is_file() else shutil.which(f"python{LAMBDA_PYTHON}")
# This machine's: the layer's binary wheels (pydantic-core) must load here.
ARCHITECTURE = {"x86_64": "x86_64", "aarch64": "arm64", "arm64": "arm64"}.get(platform.machine())
RUNTIME_CACHE_DIR = ROOT / ".build" / "lambda-runtime"

# Run by the Lambda Python: imports each module, reports the errors and any module
# that came from somewhere other than the given paths and the standard library.
IMPORT_ALL = """
import importlib, json, pkgutil, sys, sysconfig

paths, walked = json.loads(sys.argv[1])
sys.path[:0] = paths
modules = []
for package in walked:
    found = pkgutil.walk_packages(importlib.import_module(package).__path__, package + ".")
    modules += [package, *(info.name for info in found)]
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


@pytest.fixture(scope="module")
def lambda_path(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The code asset, the layer and the runtime's boto3, each extracted to a folder."""
    if PYTHON is None:
        pytest.skip(f"no python{LAMBDA_PYTHON} (pyenv's or on PATH) to import the handlers with")
    if ARCHITECTURE is None:
        pytest.skip(f"Lambda has no {platform.machine()} architecture to build the layer for")
    root = tmp_path_factory.mktemp("lambda")
    task = root / "task"
    for relative, asset in code_archive(CODE_DIR).assets.items():
        assert isinstance(asset, pulumi.FileAsset)
        (task / relative).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(asset.path, task / relative)
    layer = build_layer(
        REQUIREMENTS_FILE, ARCHITECTURE, LAMBDA_PYTHON, LAYER_CACHE_DIR, packages=(HANDLER_LIBRARY,)
    )
    # The runtime ships boto3 and its dependencies; the host's release of it here.
    runtime_requirements = root / "runtime-requirements.txt"
    runtime_requirements.write_text(f"boto3=={importlib.metadata.version('boto3')}\n")
    runtime = build_layer(runtime_requirements, ARCHITECTURE, LAMBDA_PYTHON, RUNTIME_CACHE_DIR)
    return {
        "task": task,
        "layer": _extracted(layer, root / "opt"),
        "runtime": _extracted(runtime, root / "var-runtime"),
    }


def _import_on_lambda_python(paths: Sequence[Path]) -> dict[str, Any]:
    """Every module of the handlers package and of the handler library, imported on the
    Lambda Python from `paths` (in Lambda's order: task root, layers, runtime)."""
    argument = json.dumps([[str(p) for p in paths], ["handlers", "eventcraft"]])
    result = subprocess.run(
        [str(PYTHON), "-I", "-S", "-c", IMPORT_ALL, argument],
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
        [lambda_path["task"], lambda_path["layer"], lambda_path["runtime"]]
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
    errors = _import_on_lambda_python(paths)["errors"]
    assert {"eventcraft.batch", "eventcraft.idempotency"} <= set(errors)
    assert set(errors.values()) == {"ModuleNotFoundError: No module named 'aws_lambda_powertools'"}
