"""A real `pulumi up` replaces nothing: every URN recorded in `urns/<stack>.txt` is still
registered, or is a former URN (an alias, own or inherited) of exactly one resource.

The URNs were recorded before the component package moved; a resource whose URN
changes without an alias is deleted and created again in a real account.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pulumi
import pulumi_aws as aws
import pytest

from eventcraft_sandbox.mock_deploy import deploy, run_program_file
from tests.system.conftest import PROGRAM, config_for

RECORDED = Path(__file__).parent / "urns"


def recorded(stack: str) -> list[str]:
    lines = (RECORDED / f"{stack}.txt").read_text().splitlines()
    return [line for line in lines if line and not line.startswith("#")]


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_every_recorded_urn_is_kept_or_aliased(stack: str) -> None:
    deployment = run_program_file(PROGRAM, stack=stack, config=config_for(stack))
    claims: Counter[str] = Counter()
    for resource in deployment:
        claims.update(deployment.former_urns(resource))
    old = recorded(stack)
    assert len(old) > 400  # the whole stack, not a stub
    lost = [urn for urn in old if claims[urn] == 0]
    assert not lost, f"{len(lost)} resources would be replaced, e.g. {lost[:5]}"
    shared = [urn for urn in old if claims[urn] > 1]
    assert not shared, f"several resources claim the same former URN: {shared[:5]}"


class _Renamed(pulumi.ComponentResource):
    def __init__(self, name: str, *, aliased: bool) -> None:
        aliases = [pulumi.Alias(type_="old:module:Thing")] if aliased else []
        super().__init__("new:index:Thing", name, {}, pulumi.ResourceOptions(aliases=aliases))
        aws.sqs.Queue(f"{name}-queue", opts=pulumi.ResourceOptions(parent=self))


@pytest.mark.parametrize("aliased", [True, False])
def test_a_renamed_type_keeps_its_children_only_through_an_alias(aliased: bool) -> None:
    deployment = deploy(lambda: _Renamed("thing", aliased=aliased), stack="s", project="p")
    queue = deployment.named("thing-queue")
    old_queue = "urn:pulumi:s::p::old:module:Thing$aws:sqs/queue:Queue::thing-queue"
    assert queue.urn == "urn:pulumi:s::p::new:index:Thing$aws:sqs/queue:Queue::thing-queue"
    assert (old_queue in deployment.former_urns(queue)) is aliased
