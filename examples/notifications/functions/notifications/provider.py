"""A simulated email provider: it accepts every address but those at a refused domain."""

from __future__ import annotations

import hashlib
from collections.abc import Collection


class EmailRejected(Exception):
    """The provider refused the address: a business failure, retrying cannot change it
    (the saga sees the class name as the error)."""


def send(email: str, *, refused_domains: Collection[str], idempotency_key: str) -> str:
    """Send the welcome email to `email`; returns the provider's message id, the same one
    for the same `idempotency_key` (as a real provider's idempotency header gives)."""
    domain = email.rpartition("@")[2].lower()
    if domain in refused_domains:
        raise EmailRejected(f"{email}: the provider refuses addresses at {domain}")
    return "msg-" + hashlib.sha256(idempotency_key.encode()).hexdigest()[:16]
