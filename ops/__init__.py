"""`python -m ops`: operate a deployed order-saga stack with boto3.

The tasks the resource catalogue leaves to the console: replay a time window from the
bus's archive (and watch it), inspect and redrive dead-letter queues after a fix, show
one order's saga state and history, put a contract-checked test event on the bus.
Every command reads the stack's outputs (`pulumi stack output --json`, or a file of
that JSON): see `ops.outputs`. Run `python -m ops --help`.

Exit codes: 0 ok, 1 the operation failed, 2 bad usage or configuration.
"""

from __future__ import annotations

import sys
from pathlib import Path

# The handler library (`contracts`, `eventkit`, `domain`, `handlers`) lives in
# functions/, the root of the Lambda code asset, where its packages import each other
# as top-level modules; ops reuses it rather than copying it. Appended, not inserted:
# nothing in functions/ may shadow an installed package.
FUNCTIONS_DIR = Path(__file__).resolve().parent.parent / "functions"
if str(FUNCTIONS_DIR) not in sys.path:
    sys.path.append(str(FUNCTIONS_DIR))
