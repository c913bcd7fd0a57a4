"""The errors of `ops` and the exit code each one means."""

from __future__ import annotations

from typing import Final

EXIT_OK: Final = 0
EXIT_FAILED: Final = 1
EXIT_USAGE: Final = 2


class OpsError(Exception):
    """The operation failed (exit code 1). The message says what to do."""

    exit_code: int = EXIT_FAILED


class UsageError(OpsError):
    """Bad arguments or configuration (exit code 2): nothing was changed."""

    exit_code = EXIT_USAGE


class MissingOutputError(UsageError):
    """The stack's outputs lack a value a command needs."""

    def __init__(self, path: str, needed_for: str) -> None:
        self.path = path
        super().__init__(
            f"the stack outputs have no `{path}` ({needed_for}): deploy a version of the "
            "program that exports it, or pass --outputs FILE with the value added"
        )
