"""Output of handler code captured per invocation: stdout/stderr and the
`logging` module, routed to the log of the invocation running on the thread."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from eventcraft_sandbox.lambda_runtime.thread_state import STATE


class _Demux:
    """A stdout/stderr stand-in: text written on an invocation's thread goes to that
    invocation's log, anything else to the stream it wraps.

    Loggers created inside a handler (Powertools binds `sys.stdout` once) keep it and
    keep writing to the right invocation on every later call.
    """

    def __init__(self, target: Any) -> None:
        self._target = target

    def write(self, text: str) -> int:
        invocation = STATE.invocation
        if invocation is not None:
            return invocation.write_log(text)
        try:
            return int(self._target.write(text))
        except ValueError:  # the wrapped stream was closed (a finished test's capture)
            return len(text)

    def writelines(self, lines: Sequence[str]) -> None:
        for line in lines:
            self.write(line)

    def flush(self) -> None:
        if STATE.invocation is None:
            with contextlib.suppress(ValueError, AttributeError):
                self._target.flush()

    def isatty(self) -> bool:
        return False

    def __getattr__(self, name: str) -> Any:
        return getattr(self._target, name)


def demux(stream: Any) -> Any:
    return stream if isinstance(stream, _Demux) else _Demux(stream)


class _LogRouter(logging.Handler):
    """Root-logger handler: records logged on an invocation's thread, in Lambda's
    text format, into its log (the AWS runtime's root handler does the same)."""

    def emit(self, record: logging.LogRecord) -> None:
        invocation = STATE.invocation
        if invocation is None or record.name.startswith("moto"):
            return
        try:
            message = self.format(record)
        except Exception:
            self.handleError(record)
            return
        stamp = iso_timestamp(record.created)
        invocation.write_log(f"[{record.levelname}]\t{stamp}\t{invocation.request_id}\t{message}\n")


LOG_ROUTER = _LogRouter()


def iso_timestamp(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
