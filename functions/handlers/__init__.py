"""Lambda handlers of the order saga, one module per function (`handlers.<name>.handler`).

Each module is an entry: parse the delivery (contracts + eventcraft.envelopes) -> call a use
case (`saga`, deciding with pure code in `domain`) -> shape the answer. No handler
imports another (a test checks it). Each declares `ACCESS`: environment variable naming
an AWS resource -> the IAM actions its code path calls on it; the system wires the
variables and the grants from it.
"""
