"""The order-saga application: the system component, its config and wiring, and its
sandbox driver. The Lambda code (handlers, domain, contracts) lives in `functions/`."""
