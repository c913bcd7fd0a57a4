"""Lambda handlers of the order saga, one module per function (`handlers.<name>.handler`).

Each module is thin: parse the delivery (contracts + eventkit.envelopes) -> decide
(pure code in `domain`) -> write through adapters (DynamoDB, the outbox). Each declares
`ACCESS`: environment variable naming an AWS resource -> the IAM actions its code calls
on it; the system wires the variables and the grants from it.
"""
