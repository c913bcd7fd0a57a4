"""The policy pack's entry point: Pulumi runs this file; it serves the rules and blocks.

Only this file calls `PolicyPack(...)` (it starts a gRPC server and never returns);
the rules live in `rules.py`, which tests import.
"""

from __future__ import annotations

from pulumi_policy import EnforcementLevel, PolicyPack

from policy.rules import policies

PolicyPack(
    name="order-saga-policies",
    policies=policies(),
    enforcement_level=EnforcementLevel.MANDATORY,
    description="order-saga: DLQs, retries, encryption, least privilege and observability "
    "for event-driven stacks",
)
