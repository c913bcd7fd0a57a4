"""Pure domain logic of the order saga (no AWS SDK, no I/O): the order and its saga state
machine (`orders`), stock reservations (`inventory`), the simulated payment provider
(`payments`) and carrier (`shipping`), and the side flows' modules. Handlers call these
and keep DynamoDB / EventBridge in their adapters.

`chance(seed, key)` is the one helper shared here: the deterministic "random" number the
simulated providers use for failure injection (same seed and key, same number, on every
machine and in every container).
"""

from __future__ import annotations

import hashlib


def chance(seed: str, key: str) -> float:
    """A number in [0, 1) determined by `seed` and `key` alone (SHA-256 of both)."""
    digest = hashlib.sha256(f"{seed}\x00{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64
