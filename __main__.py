"""The order-saga Pulumi program: read the stack's config, declare the system.

Everything lives in the packages: `components/` (reusable components) and
`functions/` (handler code, deployed as assets). This file only wires them.
"""

from __future__ import annotations

import pulumi

from components import order_saga_config

# Config is validated before any resource is declared: a bad value stops here.
config = order_saga_config.load()

pulumi.export("sagaMode", config.saga_mode)
pulumi.export("highValueThreshold", config.high_value_threshold)
