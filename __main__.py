"""The order-saga Pulumi program: read the stack's config, declare the system.

Everything lives in the packages: `components/` (reusable components and the
`OrderSaga` system built from them) and `functions/` (handler code, deployed as
assets). This file only wires them.
"""

from __future__ import annotations

import pulumi

from components import order_saga, order_saga_config

# Config is validated before any resource is declared: a bad value stops here.
config = order_saga_config.load()

system = order_saga.OrderSaga("order-saga", order_saga.OrderSagaArgs(config=config))

pulumi.export("sagaMode", config.saga_mode)
pulumi.export("highValueThreshold", config.high_value_threshold)
for key, value in system.outputs.items():
    pulumi.export(key, value)
