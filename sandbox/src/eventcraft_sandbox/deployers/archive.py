"""Pulumi assets and archives -> zip bytes in memory, as the provider uploads them.

The zip is deterministic (sorted entries, fixed timestamps) so a function's
CodeSha256 only changes when its code does, and it is cached by the source paths and
their modification times: `__main__.py` zips the same `functions/` folder for every
function it declares.
"""

from __future__ import annotations

import io
import threading
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pulumi

from eventcraft_sandbox.deployers.base import DeployError

_FIXED_TIME = (1980, 1, 1, 0, 0, 0)
_cache: dict[Any, bytes] = {}
_lock = threading.Lock()


def _entry(name: str, data: bytes) -> tuple[zipfile.ZipInfo, bytes]:
    info = zipfile.ZipInfo(name, date_time=_FIXED_TIME)
    info.compress_type = zipfile.ZIP_DEFLATED
    info.external_attr = 0o644 << 16
    return info, data


def _folder_entries(root: Path, prefix: str) -> Iterator[tuple[str, bytes]]:
    for path in sorted(root.rglob("*")):
        if path.is_file():
            yield prefix + path.relative_to(root).as_posix(), path.read_bytes()


def _zip_entries(path: Path, prefix: str) -> Iterator[tuple[str, bytes]]:
    with zipfile.ZipFile(path) as source:
        for info in source.infolist():
            if not info.is_dir():
                yield prefix + info.filename, source.read(info)


def _entries(value: Any, prefix: str) -> Iterator[tuple[str, bytes]]:
    if isinstance(value, pulumi.FileArchive):
        path = Path(value.path)
        if path.is_dir():
            yield from _folder_entries(path, prefix)
        elif zipfile.is_zipfile(path):
            yield from _zip_entries(path, prefix)
        else:
            raise DeployError(f"archive {path}: only folders and .zip files are supported")
    elif isinstance(value, pulumi.AssetArchive):
        for name, item in sorted(value.assets.items()):
            if isinstance(item, pulumi.Archive):
                yield from _entries(item, f"{prefix}{name.rstrip('/')}/")
            else:
                yield prefix + name, _asset_bytes(item)
    else:
        raise DeployError(
            f"{type(value).__name__} is not supported as code; use a FileArchive of a "
            "folder or .zip, or an AssetArchive of file/string assets"
        )


def _asset_bytes(asset: Any) -> bytes:
    if isinstance(asset, pulumi.FileAsset):
        return Path(asset.path).read_bytes()
    if isinstance(asset, pulumi.StringAsset):
        return str(asset.text).encode()
    raise DeployError(f"{type(asset).__name__} is not supported in an AssetArchive")


def _stat(path: Path) -> tuple[str, int, int]:
    if path.is_dir():
        newest = max((p.stat().st_mtime_ns for p in path.rglob("*")), default=0)
        count = sum(1 for _ in path.rglob("*"))
        return str(path), newest, count
    st = path.stat()
    return str(path), st.st_mtime_ns, st.st_size


def _cache_key(value: Any) -> Any:
    """The source paths (and their mtimes) behind an archive: what the cache is keyed by."""
    if isinstance(value, pulumi.FileArchive | pulumi.FileAsset):
        return (type(value).__name__, _stat(Path(value.path)))
    if isinstance(value, pulumi.StringAsset):
        return ("text", value.text)
    if isinstance(value, pulumi.AssetArchive):
        return ("assets", tuple((k, _cache_key(v)) for k, v in sorted(value.assets.items())))
    return (type(value).__name__, id(value))


def zip_bytes(archive: Any) -> bytes:
    """The zip file Lambda would receive for a Pulumi archive (cached by source paths)."""
    key = _cache_key(archive)
    with _lock:
        cached = _cache.get(key)
    if cached is not None:
        return cached
    if isinstance(archive, pulumi.FileArchive) and zipfile.is_zipfile(archive.path):
        # A ready-made zip (a layer build) is uploaded as it is.
        data = Path(archive.path).read_bytes()
    else:
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w") as out:
            for name, entry in _entries(archive, ""):
                out.writestr(*_entry(name, entry))
        data = buffer.getvalue()
    with _lock:
        _cache[key] = data
    return data
