"""The AWS clients of this code: one per service per execution environment, on first use.

They live in this package rather than in `eventcraft.clients` so that each function's
clients stay in its own code: the sandbox runs every function in one process and
shares an installed `eventcraft` between them, so a client cached there would carry
the first function's role to the others.
"""

from __future__ import annotations

import functools
from typing import Any

import boto3
from botocore.config import Config


@functools.cache
def client(service: str) -> Any:
    """The client of `service` (region and credentials from the environment); retries in
    botocore's "standard" mode."""
    return boto3.session.Session().client(service, config=Config(retries={"mode": "standard"}))  # type: ignore[call-overload]
