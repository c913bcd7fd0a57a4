"""Which packages of a layer a sandbox container takes from the host: only the host's
identical third-party releases; everything else is the function's own, as each Lambda
function runs in a process of its own."""

from __future__ import annotations

import importlib.metadata
from pathlib import Path

from eventcraft_sandbox.lambda_runtime.containers import shared_with_host

YAML = importlib.metadata.distribution("PyYAML")


def _dist(layer: Path, name: str, version: str, *top_level: str) -> None:
    info = layer / f"{name}-{version}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    (info / "top_level.txt").write_text("\n".join(top_level) + "\n")
    for package in top_level:
        (layer / package).mkdir(exist_ok=True)
        (layer / package / "__init__.py").write_text("")


def test_only_the_hosts_identical_index_releases_are_shared(tmp_path: Path) -> None:
    _dist(tmp_path, "PyYAML", YAML.version, "yaml")
    assert shared_with_host(tmp_path) == {"yaml"}


def test_another_version_of_a_host_package_is_the_functions_own(tmp_path: Path) -> None:
    _dist(tmp_path, "PyYAML", "0.0.1", "yaml")
    assert shared_with_host(tmp_path) == set()


def test_the_projects_own_library_is_never_shared(tmp_path: Path) -> None:
    # eventcraft is installed on the host from this checkout (editable), not an index:
    # a module-level cache of boto3 clients must not be shared between functions.
    eventcraft = importlib.metadata.distribution("eventcraft")
    assert eventcraft.read_text("direct_url.json") is not None
    _dist(tmp_path, "eventcraft", eventcraft.version, "eventcraft")
    assert shared_with_host(tmp_path) == set()
