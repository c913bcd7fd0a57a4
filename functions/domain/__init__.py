"""Pure domain logic of the order saga (no AWS SDK, no I/O): the order and its saga state
machine (`orders`), stock reservations (`inventory`), the simulated payment provider
(`payments`) and carrier (`shipping`), and the side flows' modules. Handlers call these
and keep DynamoDB / EventBridge in their adapters.

The helpers shared here are the simulated providers' (payments, shipping): `chance(seed,
key)`, the deterministic "random" number of their failure injection (same seed and key,
same number, on every machine and in every container), and `number_setting`, how their
numeric knobs are read from the environment.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import TypeVar

N = TypeVar("N", int, float)
D = TypeVar("D")


def chance(seed: str, key: str) -> float:
    """A number in [0, 1) determined by `seed` and `key` alone (SHA-256 of both)."""
    digest = hashlib.sha256(f"{seed}\x00{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def number_setting(
    env: Mapping[str, str],
    name: str,
    kind: type[N],
    *,
    low: N,
    high: N,
    default: D,
    error: type[Exception],
) -> N | D:
    """`env[name]` as a `kind` (int or float) between `low` and `high` (inclusive), or
    `default` when it is unset or empty. Raises `error` naming the variable and its value
    when it is not a `kind` or out of range."""
    raw = env.get(name)
    if not raw:
        return default
    try:
        value = kind(raw)
    except ValueError:
        raise error(f"{name}={raw!r} is not a{'n integer' if kind is int else ' number'}") from None
    if not low <= value <= high:
        raise error(f"{name}={raw!r} must be between {low} and {high}")
    return value
