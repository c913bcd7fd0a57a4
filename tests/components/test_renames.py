"""former_types: a renamed component keeps its deployed resources through aliases."""

from __future__ import annotations

import pulumi
import pulumi_aws as aws
import pytest

from eventcraft_sandbox.mock_deploy import deploy
from pulumi_eventcraft.renames import former_types


class _Thing(pulumi.ComponentResource):
    def __init__(self, name: str, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("lib:index:Thing", name, {}, opts)
        aws.sqs.Queue(f"{name}-queue", opts=pulumi.ResourceOptions(parent=self))


class _App(pulumi.ComponentResource):
    def __init__(self, name: str) -> None:
        rename = former_types({"lib:index:Thing": "app:thing:Thing"})
        super().__init__(
            "app:index:App", name, {}, pulumi.ResourceOptions(transformations=[rename])
        )
        _Thing(f"{name}-thing", pulumi.ResourceOptions(parent=self))


def test_a_renamed_component_and_its_children_keep_their_former_urns() -> None:
    d = deploy(lambda: _App("a"), stack="s", project="p")
    old = "urn:pulumi:s::p::app:index:App$app:thing:Thing"
    assert d.named("a-thing").aliases == (f"{old}::a-thing",)
    assert f"{old}$aws:sqs/queue:Queue::a-thing-queue" in d.former_urns(d.named("a-thing-queue"))
    # Resources of other types are left alone.
    assert d.named("a").aliases == ()


@pytest.mark.parametrize(
    ("former", "message"),
    [
        ({"lib:Thing": "app:thing:Thing"}, "'lib:Thing' is not a type token"),
        ({"lib:index:Thing": "app::Thing"}, "'app::Thing' is not a type token"),
        ({"lib:index:Thing": "lib:index:Thing"}, "maps to itself"),
    ],
)
def test_bad_tokens_are_refused_by_name(former: dict[str, str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        former_types(former)
