"""The order-saga Pulumi program: read the stack's config, declare the system.

The application lives in `order_saga/` (the system component, its config, wiring and
function catalogue), built from the reusable components of `components/`; the Lambda
code lives in `functions/` (deployed as assets). This file only reads the config,
declares the system and exports its outputs.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pulumi

# The app imports the Lambda code root's packages (contracts, domain) as top-level
# modules, as the tests do (pytest's pythonpath); until they are an installed package,
# the program puts that root on the path, once, here.
CODE_ROOT = str(Path(__file__).resolve().parent / "functions")
if CODE_ROOT not in sys.path:
    sys.path.append(CODE_ROOT)

from order_saga import config as order_saga_config  # noqa: E402
from order_saga.system import OrderSaga, OrderSagaArgs  # noqa: E402

# Config is validated before any resource is declared: a bad value stops here.
config = order_saga_config.load()

system = OrderSaga("saga", OrderSagaArgs(config=config))

# The outputs an operator needs (and `python -m ops` reads), one key each.
for key, value in system.outputs.items():
    pulumi.export(key, value)
