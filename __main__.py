"""The order-saga Pulumi program: read the stack's config, declare the system.

The application lives in `order_saga/` (the system component, its config, wiring and
function catalogue), built from the component package `pulumi_eventcraft`; the Lambda
code lives in `functions/` (deployed as assets). This file only reads the config,
declares the system and exports its outputs.
"""

from __future__ import annotations

import pulumi

from order_saga import config as order_saga_config
from order_saga.system import OrderSaga, OrderSagaArgs

# Config is validated before any resource is declared: a bad value stops here.
config = order_saga_config.load()

system = OrderSaga("saga", OrderSagaArgs(config=config))

# The outputs an operator needs (and `python -m ops` reads), one key each.
for key, value in system.outputs.items():
    pulumi.export(key, value)
