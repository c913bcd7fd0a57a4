"""The order saga run in the sandbox: its session driver (seeding, orders, views,
invariants) and the demo."""
