"""The order-saga Pulumi program: read the stack's config, declare the system.

Everything lives in the packages: `components/` (reusable components, and the system
that wires them: `components.order_saga`) and `functions/` (handler code, deployed as
assets). This file only reads the config, declares the system and exports its outputs.
"""

from __future__ import annotations

import pulumi

from components import order_saga_config
from components.order_saga import OrderSaga, OrderSagaArgs

# Config is validated before any resource is declared: a bad value stops here.
config = order_saga_config.load()

system = OrderSaga("saga", OrderSagaArgs(config=config))

# The outputs an operator needs (and `python -m ops` reads), one key each.
for key, value in system.outputs.items():
    pulumi.export(key, value)
