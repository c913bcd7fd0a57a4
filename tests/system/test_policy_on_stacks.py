"""The policy pack's rules (policy/rules.py, what `pulumi preview --policy-pack policy`
enforces) pass on both stacks, in every saga mode, and with the optional parts on."""

from __future__ import annotations

import pytest

from policy.rules import RULES, check_all, view_from_mock
from tests.system.conftest import ALL_OPTIONS, MODES, STACKS, System, deploy


def assert_clean(system: System) -> None:
    results = check_all([view_from_mock(r) for r in system.deployment])
    assert set(results) == {rule.name for rule in RULES}
    assert {name: f.messages for name, f in results.items() if f.messages} == {}
    # Under the mocks every value is known: nothing may go unchecked.
    assert {name: f.unchecked for name, f in results.items() if f.unchecked} == {}


@pytest.mark.parametrize("stack", STACKS)
@pytest.mark.parametrize("mode", MODES)
def test_every_rule_passes(stack: str, mode: str) -> None:
    assert_clean(deploy(stack, mode))


@pytest.mark.parametrize("stack", STACKS)
def test_every_rule_passes_with_partners_forwarding_and_an_emulator(stack: str) -> None:
    assert_clean(deploy(stack, **ALL_OPTIONS))
