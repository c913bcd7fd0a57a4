"""What the current thread is doing for the runtime: running an invocation's
handler, or handling an Invoke API request in moto."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from eventcraft_sandbox.lambda_runtime.invocation import Invocation
    from eventcraft_sandbox.lambda_runtime.moto_hooks import ApiCall


class ThreadState(threading.local):
    invocation: Invocation | None = None
    api_call: ApiCall | None = None


STATE = ThreadState()
