"""A function's required settings: environment variables its component sets.

    from eventcraft.settings import ConfigurationError, env

    table = env("ORDERS_TABLE")  # ConfigurationError naming ORDERS_TABLE if unset

Light on purpose (only `os`): every handler imports it at cold start.
"""

from __future__ import annotations

import os
from typing import Final

DEFAULT_HINT: Final = "the function's component must set it"


class ConfigurationError(RuntimeError):
    """A required environment variable is missing or invalid."""


def env(name: str, hint: str = DEFAULT_HINT, *, error: type[Exception] = ConfigurationError) -> str:
    """The value of environment variable `name`; an empty value counts as unset.

    Raises `error` (default ConfigurationError) "environment variable <name> is not set:
    <hint>"; `hint` (default: the function's component must set it) says what to do.
    """
    value = os.environ.get(name)
    if not value:
        raise error(f"environment variable {name} is not set: {hint}")
    return value
