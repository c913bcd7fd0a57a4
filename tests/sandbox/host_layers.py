"""Layers of the host's own releases, for tests whose functions import third-party
packages (Powertools) without a layer built by pip.

A function in the sandbox imports only what Lambda would give it: the runtime's boto3,
its code and its layers. A layer here declares a distribution at the version the host
has installed (its metadata, no code): the container takes that package from the host
(`shared_with_host`), as it would the same release from a layer built by pip.
"""

from __future__ import annotations

import importlib.metadata
import io
import zipfile
from collections.abc import Sequence
from pathlib import Path

from pulumi_eventcraft.layer import DependencyLayer, DependencyLayerArgs


def _top_level(distribution: str) -> list[str]:
    return sorted(
        name
        for name, owners in importlib.metadata.packages_distributions().items()
        if distribution.lower() in (owner.lower() for owner in owners)
    )


def _release_files(distribution: str) -> dict[str, str]:
    """The host release of `distribution` as pip lists it in a target directory: a
    `.dist-info` with its name, version and top-level packages."""
    release = importlib.metadata.distribution(distribution)
    project = release.metadata["Name"]
    info = f"{project.replace('-', '_')}-{release.version}.dist-info"
    return {
        f"{info}/METADATA": f"Metadata-Version: 2.1\nName: {project}\nVersion: {release.version}\n",
        f"{info}/top_level.txt": "".join(f"{name}\n" for name in _top_level(project)),
    }


def write_host_releases(target: Path, distributions: Sequence[str]) -> None:
    """Put each distribution's host release into `target` (a layer's site)."""
    for distribution in distributions:
        for relative, text in _release_files(distribution).items():
            (target / relative).parent.mkdir(parents=True, exist_ok=True)
            (target / relative).write_text(text)


def host_release_zip(*distributions: str) -> bytes:
    """A layer zip (`python/...`) of these distributions' host releases."""
    staging = io.BytesIO()
    with zipfile.ZipFile(staging, "w") as archive:
        for distribution in distributions:
            for relative, text in _release_files(distribution).items():
                archive.writestr(f"python/{relative}", text)
    return staging.getvalue()


def _host_pip(command: Sequence[str]) -> None:
    """A `PipRunner` that installs the requirements file's distributions as their host
    releases (`write_host_releases`) instead of running pip."""
    target = Path(command[list(command).index("--target") + 1])
    requirements = Path(command[list(command).index("-r") + 1])
    names = [line.strip() for line in requirements.read_text().splitlines() if line.strip()]
    write_host_releases(target, names)


def host_release_layer(name: str, directory: Path, *distributions: str) -> DependencyLayer:
    """A `DependencyLayer` (in a Pulumi program) of these distributions' host releases;
    its requirements file and cache live in `directory`."""
    requirements = directory / f"{name}-requirements.txt"
    requirements.write_text("".join(f"{d}\n" for d in distributions))
    return DependencyLayer(
        name,
        DependencyLayerArgs(
            requirements_file=requirements, cache_dir=directory / "layers", runner=_host_pip
        ),
    )
