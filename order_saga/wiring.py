"""How the order-saga system wires a handler to the resources it touches: from `ACCESS`.

Every handler module declares `ACCESS`: environment variable naming an AWS resource ->
the IAM actions its code calls on that resource, e.g.

    ACCESS = {"ORDERS_TABLE": frozenset({"dynamodb:GetItem", "dynamodb:PutItem"})}

The system gives each environment variable a `Binding` (the component that provides
it), and `wire` turns a handler's ACCESS into exactly two things: the variable set to
the resource's name (or URL), and one grant per variable allowing exactly the listed
actions on exactly that resource's ARN (a table's `/index/*` too when the actions
include Query and the table has indexes; an S3 object action on `<bucket>/*`). Reading
a stream is not in ACCESS: the event source mapping grants it, knowing both ends.

`AWS_LAMBDA_FUNCTION_NAME` (OWN_FUNCTION), which the Lambda runtime sets to the
function's own name, names the function itself: its actions (lambda:InvokeFunction, for
a handler that continues its work in a new invocation) are granted on that function's
ARN only (`Wiring.own_grants`). That grant is a policy of its own, attached once the
function exists: the role does not depend on the function's ARN, so the function, which
depends on the role, can be named in it without a cycle (and without guessing the ARN
from its name, region and account).

`read_access` reads ACCESS with `ast`, without importing the handler: the Pulumi
program must not run handler code (imports of boto3 and Powertools, module-level
settings) to deploy it, and a handler that fails to import must not stop a preview.
ACCESS must therefore be a literal dict of `frozenset({...})` of strings; anything
computed is refused with a message saying so.
"""

from __future__ import annotations

import ast
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import pulumi

from order_saga.catalogue import CODE_DIR
from pulumi_eventcraft.iam import Statement

ACCESS_NAME = "ACCESS"
# Set by the Lambda runtime to the function's own name: ACCESS on it is on the function.
OWN_FUNCTION = "AWS_LAMBDA_FUNCTION_NAME"
OWN_FUNCTION_SERVICE = "lambda"

Kind = Literal["table", "queue", "bus", "bucket", "stream"]
# The IAM service prefix of the actions a resource of each kind accepts.
SERVICE: Mapping[Kind, str] = {
    "table": "dynamodb",
    "queue": "sqs",
    "bus": "events",
    "bucket": "s3",
    "stream": "kinesis",
}
# S3 actions that act on the bucket itself; every other S3 action acts on objects and is
# authorized against `<bucket arn>/<key>`.
S3_BUCKET_ACTIONS = frozenset(
    {
        "s3:ListBucket",
        "s3:ListBucketVersions",
        "s3:GetBucketLocation",
        "s3:GetBucketNotification",
        "s3:GetBucketVersioning",
    }
)
MAX_GRANT_NAME = 64


class AccessError(ValueError):
    """A handler's ACCESS cannot be read, or cannot be wired to the system's resources."""


class UnmappedResourceError(AccessError):
    """A handler names an environment variable the system provides no resource for."""


def handler_module(handler: str) -> str:
    """`handlers.place_order.handler` -> `handlers.place_order`."""
    module, _, attribute = handler.rpartition(".")
    if not module or not attribute:
        raise AccessError(f"handler {handler!r} is not 'module.function'")
    return module


def read_access(
    module: str, *, code_dir: Path = CODE_DIR, name: str = ACCESS_NAME
) -> dict[str, frozenset[str]]:
    """The literal `ACCESS` dict of `module` (e.g. "handlers.place_order"), read with ast.

    Raises AccessError naming the module when the file is missing, does not parse, has
    no top-level ACCESS, or when ACCESS is not a literal dict of string -> frozenset of
    strings (`{"X": frozenset({"a:B"})}`).
    """
    path = code_dir.joinpath(*module.split(".")).with_suffix(".py")
    if not path.is_file():
        raise AccessError(f"{module}: no module file {path}")
    try:
        tree = ast.parse(path.read_text(), filename=str(path))
    except SyntaxError as exc:
        raise AccessError(f"{module}: does not parse (line {exc.lineno}: {exc.msg})") from None
    value: ast.expr | None = None
    for node in tree.body:
        if (
            isinstance(node, ast.Assign)
            and any(isinstance(t, ast.Name) and t.id == name for t in node.targets)
        ) or (
            isinstance(node, ast.AnnAssign)
            and isinstance(node.target, ast.Name)
            and node.target.id == name
        ):
            value = node.value
    if value is None:
        raise AccessError(
            f"{module}: no top-level {name}; every handler module declares what it touches "
            f'({name} = {{"ORDERS_TABLE": frozenset({{"dynamodb:GetItem"}})}})'
        )
    where = f"{module}.{name}"
    if not isinstance(value, ast.Dict):
        raise AccessError(
            f"{where} is not a literal dict: the system reads it without running code"
        )
    access: dict[str, frozenset[str]] = {}
    for key, item in zip(value.keys, value.values, strict=True):
        if not (isinstance(key, ast.Constant) and isinstance(key.value, str)):
            raise AccessError(f"{where}: every key must be a literal string (an env var name)")
        access[key.value] = _literal_actions(item, f"{where}[{key.value!r}]")
    return access


def _literal_actions(node: ast.expr, where: str) -> frozenset[str]:
    """`frozenset({"a:B", ...})` (or a list/tuple inside) -> the strings."""
    if not (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id == "frozenset"
        and not node.keywords
        and len(node.args) <= 1
    ):
        raise AccessError(f"{where} must be frozenset({{...}}) of literal action names")
    if not node.args:
        return frozenset()
    (items,) = node.args
    if not isinstance(items, ast.Set | ast.List | ast.Tuple):
        raise AccessError(f"{where} must be frozenset({{...}}) of literal action names")
    actions = []
    for element in items.elts:
        if not (isinstance(element, ast.Constant) and isinstance(element.value, str)):
            raise AccessError(
                f"{where}: every action must be a literal string like 'sqs:SendMessage'"
            )
        actions.append(element.value)
    return frozenset(actions)


def restrict(
    access: Mapping[str, frozenset[str]], keys: Sequence[str], *, handler: str
) -> dict[str, frozenset[str]]:
    """ACCESS limited to `keys` (a function running only some entries of a module needs
    only their variables, e.g. one check of `handlers.run_check`)."""
    missing = sorted(set(keys) - set(access))
    if missing:
        raise AccessError(
            f"{handler}: {', '.join(missing)} not in its module's ACCESS "
            f"({', '.join(sorted(access))}); a function can only drop variables, not add them"
        )
    return {key: access[key] for key in keys}


# ----------------------------------------------------------------------- bindings


@dataclass(frozen=True)
class Binding:
    """What one environment variable names: a resource of `kind`.

    value: what the variable is set to (a table, bus or stream name, a queue URL, a
        bucket name). arn: the resource's ARN, what the grant is scoped to.
    label: the resource's logical name, for messages.
    index_arn: a table's `<arn>/index/*` (None: the table has no index).
    """

    kind: Kind
    value: pulumi.Input[str]
    arn: pulumi.Input[str]
    label: str
    index_arn: pulumi.Input[str] | None = None

    def statements(self, actions: frozenset[str]) -> list[Statement]:
        """Exactly `actions` on exactly this resource (split where AWS authorizes an
        action against a sub-resource: index queries, S3 objects)."""
        ordered = sorted(actions)
        if self.kind == "bucket":
            on_bucket = [a for a in ordered if a in S3_BUCKET_ACTIONS]
            on_objects = [a for a in ordered if a not in S3_BUCKET_ACTIONS]
            statements = []
            if on_objects:
                objects = pulumi.Output.concat(self.arn, "/*")
                statements.append(Statement(actions=on_objects, resources=[objects]))
            if on_bucket:
                statements.append(Statement(actions=on_bucket, resources=[self.arn]))
            return statements
        resources: list[pulumi.Input[str]] = [self.arn]
        if self.kind == "table" and self.index_arn is not None and "dynamodb:Query" in actions:
            resources.append(self.index_arn)
        return [Statement(actions=ordered, resources=resources)]


@dataclass(frozen=True)
class Wiring:
    """A handler's environment variables (name -> value) and grants (name -> statements);
    `own_actions`: what it may do on its own function (OWN_FUNCTION), granted by
    `own_grants` once the function exists."""

    environment: dict[str, pulumi.Input[str]]
    grants: dict[str, list[Statement]]
    own_actions: frozenset[str] = frozenset()

    def own_grants(self, function_arn: pulumi.Input[str]) -> dict[str, list[Statement]]:
        """The grant of `own_actions` on exactly the function's ARN (none without)."""
        if not self.own_actions:
            return {}
        statement = Statement(actions=sorted(self.own_actions), resources=[function_arn])
        return {grant_name(OWN_FUNCTION): [statement]}


def grant_name(variable: str) -> str:
    """The grant (inline policy) name of one variable: `access-orders-table`."""
    return f"access-{variable.lower().replace('_', '-')}"[:MAX_GRANT_NAME]


def check_bindings(
    handler: str, access: Mapping[str, frozenset[str]], bindings: Mapping[str, Binding]
) -> None:
    """Raise UnmappedResourceError naming `handler` and every variable of its ACCESS that
    `bindings` do not provide (OWN_FUNCTION needs none: it is the function itself)."""
    unmapped = sorted(set(access) - set(bindings) - {OWN_FUNCTION})
    if unmapped:
        raise UnmappedResourceError(
            f"{handler}: its ACCESS names {', '.join(unmapped)}, which the system provides no "
            f"resource for (it provides {', '.join(sorted(bindings)) or 'nothing'}); add a "
            "binding for each variable, or fix the handler's ACCESS"
        )


def wire(
    handler: str, access: Mapping[str, frozenset[str]], bindings: Mapping[str, Binding]
) -> Wiring:
    """The environment and grants of `handler` from its ACCESS and the system's bindings.

    Raises UnmappedResourceError naming the handler and every variable the bindings do
    not provide, and AccessError for an action of another service than its resource's
    (e.g. "sqs:SendMessage" on a table) or a variable that grants nothing. OWN_FUNCTION
    is not set (the runtime sets it) and its actions are `own_actions`.
    """
    check_bindings(handler, access, bindings)
    environment: dict[str, pulumi.Input[str]] = {}
    grants: dict[str, list[Statement]] = {}
    own_actions: frozenset[str] = frozenset()
    for variable in sorted(access):
        actions = access[variable]
        if not actions:
            raise AccessError(f"{handler}: ACCESS[{variable!r}] grants no action")
        if variable == OWN_FUNCTION:
            _check_service(handler, variable, actions, OWN_FUNCTION_SERVICE, "its own function")
            own_actions = actions
            continue
        binding = bindings[variable]
        label = f"{binding.label!r}, a {binding.kind}"
        _check_service(handler, variable, actions, SERVICE[binding.kind], label)
        environment[variable] = binding.value
        grants[grant_name(variable)] = binding.statements(actions)
    return Wiring(environment, grants, own_actions)


def _check_service(
    handler: str, variable: str, actions: frozenset[str], service: str, what: str
) -> None:
    foreign = sorted(a for a in actions if a.split(":", 1)[0] != service)
    if foreign:
        raise AccessError(
            f"{handler}: ACCESS[{variable!r}] lists {', '.join(foreign)}, but {variable} "
            f"names {what} (only {service}:* actions apply to it)"
        )
