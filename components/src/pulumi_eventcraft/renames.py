"""Keep deployed resources when their component type tokens change.

A resource's URN holds its type and the types of all its parents: renaming a
component's type token would make `pulumi up` delete and recreate everything beneath
it. `former_types` returns a transformation that gives each renamed component an
alias to its former type; the engine derives the children's aliases from it. Put it
on the outermost component (its children inherit transformations):

    OrderSystem("shop", args, ResourceOptions(transformations=[former_types({
        "eventcraft:index:Queue": "shop:queue:Queue",
    })]))
"""

from __future__ import annotations

from collections.abc import Mapping

import pulumi


def former_types(former: Mapping[str, str]) -> pulumi.ResourceTransformation:
    """A transformation aliasing each resource of a type in `former` (new -> old type
    token) to its old type; other resources pass unchanged."""
    for new, old in former.items():
        for token in (new, old):
            if token.count(":") != 2 or not all(token.split(":")):
                raise ValueError(f"former: {token!r} is not a type token 'package:module:Type'")
        if new == old:
            raise ValueError(f"former: {new!r} maps to itself")

    def alias(
        args: pulumi.ResourceTransformationArgs,
    ) -> pulumi.ResourceTransformationResult | None:
        old = former.get(args.type_)
        if old is None:
            return None
        opts = pulumi.ResourceOptions.merge(
            args.opts, pulumi.ResourceOptions(aliases=[pulumi.Alias(type_=old)])
        )
        return pulumi.ResourceTransformationResult(args.props, opts)

    return alias
