"""What every benchmark shares: paths, timing, medians, the moto environment.

Timing is `time.perf_counter` with the garbage collector paused inside the timed region
(as `timeit` does), repeated; we report MEDIANS and RATIOS of variants measured side by
side in the same run, interleaved, because the machine is shared and noisy.
"""

from __future__ import annotations

import gc
import os
import platform
import statistics
import subprocess
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
FUNCTIONS = ROOT / "functions"
SHARED = ROOT.parent / "shared"
CONFORMANCE_CASES = SHARED / "conformance" / "eventbridge-patterns" / "cases"


def moto_environment() -> None:
    """Fake credentials and a region: the benchmarks only ever talk to moto, and must
    never pick up a developer's real credentials."""
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    os.environ["AWS_ACCESS_KEY_ID"] = "testing"
    os.environ["AWS_SECRET_ACCESS_KEY"] = "testing"
    os.environ.pop("AWS_SESSION_TOKEN", None)
    os.environ.pop("AWS_PROFILE", None)
    # botocore >= 1.44 would send some calls to account-based endpoints moto does not route.
    os.environ["AWS_ACCOUNT_ID_ENDPOINT_MODE"] = "disabled"


@contextmanager
def gc_paused() -> Iterator[None]:
    enabled = gc.isenabled()
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    """(seconds, result) of one call, GC paused."""
    with gc_paused():
        start = time.perf_counter()
        result = fn()
        elapsed = time.perf_counter() - start
    return elapsed, result


def per_call(fn: Callable[[], Any], loops: int) -> float:
    """Seconds per call of `fn`, over `loops` back-to-back calls (GC paused)."""
    with gc_paused():
        start = time.perf_counter()
        for _ in range(loops):
            fn()
        elapsed = time.perf_counter() - start
    return elapsed / loops


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


def summary(samples: Sequence[float]) -> dict[str, Any]:
    """Median, min, max and the raw samples (seconds)."""
    return {
        "median": median(samples),
        "min": min(samples) if samples else float("nan"),
        "max": max(samples) if samples else float("nan"),
        "n": len(samples),
        "samples": list(samples),
    }


def ratio(slow: float, fast: float) -> float:
    return slow / fast if fast > 0 else float("inf")


def machine() -> dict[str, Any]:
    """Where and when the numbers were taken."""
    info: dict[str, Any] = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "nproc": os.cpu_count(),
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "machine": platform.machine(),
    }
    try:
        with open("/proc/loadavg", encoding="ascii") as handle:
            info["loadavg_at_start"] = handle.read().split()[:3]
    except OSError:
        pass
    info.update(_versions())
    info.update(_git())
    return info


def _versions() -> dict[str, Any]:
    from importlib import metadata

    versions: dict[str, str] = {}
    for dist in ("moto", "boto3", "botocore", "pydantic", "aws-lambda-powertools"):
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            versions[dist] = "not installed"
    return {"versions": versions}


def _git() -> dict[str, Any]:
    # Read-only: which commit the numbers belong to, and whether the tree had changes.
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return {}
    return {"git_head": head, "git_tree_modified": bool(dirty)}


def us(seconds: float) -> str:
    return f"{seconds * 1e6:,.1f} µs"


def ms(seconds: float) -> str:
    return f"{seconds * 1e3:,.1f} ms"


def sec(seconds: float) -> str:
    return f"{seconds:,.2f} s"


def create_events_table(client: Any, name: str) -> None:
    """An event store's table (aggregateId, version), on demand."""
    client.create_table(
        TableName=name,
        KeySchema=[
            {"AttributeName": "aggregateId", "KeyType": "HASH"},
            {"AttributeName": "version", "KeyType": "RANGE"},
        ],
        AttributeDefinitions=[
            {"AttributeName": "aggregateId", "AttributeType": "S"},
            {"AttributeName": "version", "AttributeType": "N"},
        ],
        BillingMode="PAY_PER_REQUEST",
    )
