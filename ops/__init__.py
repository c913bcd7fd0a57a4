"""`python -m ops`: operate a deployed order-saga stack with boto3.

The tasks the resource catalogue leaves to the console: replay a time window from the
bus's archive (and watch it), inspect and redrive dead-letter queues after a fix, show
one order's saga state and history, put a contract-checked test event on the bus.
Every command reads the stack's outputs (`pulumi stack output --json`, or a file of
that JSON): see `ops.outputs`. Run `python -m ops --help`.

Exit codes: 0 ok, 1 the operation failed, 2 bad usage or configuration.
"""

from __future__ import annotations
