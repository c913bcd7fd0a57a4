"""EventBus: the bus, archive, policy and schema registry a user sees in `pulumi preview`,
and the arguments it refuses."""

from __future__ import annotations

import json
from typing import Any

import pytest

from eventcraft_sandbox.mock_deploy import Deployment, RecordingMocks, deploy
from pulumi_eventcraft.event_bus import EventBus, EventBusArgs
from pulumi_eventcraft.event_pattern import InvalidEventPatternError, Pattern, prefix
from pulumi_eventcraft.iam import PolicyViolation, Statement, find_violations, policy_document

BUS = "aws:cloudwatch/eventBus:EventBus"
ARCHIVE = "aws:cloudwatch/eventArchive:EventArchive"
BUS_POLICY = "aws:cloudwatch/eventBusPolicy:EventBusPolicy"
REGISTRY = "aws:schemas/registry:Registry"
SCHEMA = "aws:schemas/schema:Schema"
COMPONENT = "eventcraft:index:EventBus"
BUS_ARN = "arn:aws:events:us-east-1:123456789012:event-bus/orders-bus"
ORG = "o-a1b2c3d4e5"


DRAFT4 = "http://json-schema.org/draft-04/schema#"
PLACED = {
    "$schema": DRAFT4,
    "title": "Placed",
    "type": "object",
    "required": ["detail-type", "detail"],
    "properties": {"detail": {"$ref": "#/definitions/Placed"}},
    "definitions": {"Placed": {"type": "object", "properties": {"id": {"type": "string"}}}},
}


def run(args: EventBusArgs | None = None, name: str = "orders") -> tuple[Deployment, EventBus]:
    made: list[EventBus] = []
    deployment = deploy(lambda: made.append(EventBus(name, args)))
    return deployment, made[0]


def policy_of(deployment: Deployment) -> dict[str, Any]:
    return json.loads(deployment.named("orders-policy", BUS_POLICY).inputs["policy"])


# ------------------------------------------------------------------ defaults


def test_defaults_bus_archive_30_days_everything_no_policy_no_registry() -> None:
    deployment, bus = run()
    component = deployment.named("orders", COMPONENT)
    children = {(r.typ, r.name) for r in deployment.children(component)}
    assert children == {(BUS, "orders-bus"), (ARCHIVE, "orders-archive")}

    created = deployment.named("orders-bus", BUS)
    assert "kmsKeyIdentifier" not in created.inputs  # AWS-owned key, encrypted anyway

    archive = deployment.named("orders-archive", ARCHIVE)
    assert archive.inputs["eventSourceArn"] == BUS_ARN
    assert archive.inputs["retentionDays"] == 30
    assert "eventPattern" not in archive.inputs  # everything is archived
    assert deployment.of_type(BUS_POLICY) == []
    assert deployment.of_type(REGISTRY) == []
    assert bus.registry is None
    assert bus.schemas == {}
    assert bus.policy is None
    assert bus.archive_retention_days == 30


def test_put_events_statements_are_exactly_put_events_on_the_bus_arn() -> None:
    documents: list[str] = []

    def program() -> None:
        bus = EventBus("orders")
        statements = bus.put_events_statements()
        assert statements == [Statement(actions=("events:PutEvents",), resources=[bus.arn])]
        policy_document(statements).apply(documents.append)

    deploy(program)
    assert json.loads(documents[0])["Statement"] == [
        {"Effect": "Allow", "Action": "events:PutEvents", "Resource": BUS_ARN}
    ]


def test_archive_with_pattern_retention_and_customer_key() -> None:
    key = "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"
    pattern = Pattern(source="orders", detail_type=[prefix("Order")])
    deployment, bus = run(
        EventBusArgs(archive_retention_days=365, archive_pattern=pattern, kms_key_identifier=key)
    )
    assert deployment.named("orders-bus", BUS).inputs["kmsKeyIdentifier"] == key
    archive = deployment.named("orders-archive", ARCHIVE)
    assert archive.inputs["retentionDays"] == 365
    assert archive.inputs["kmsKeyIdentifier"] == key
    assert json.loads(archive.inputs["eventPattern"]) == {
        "source": ["orders"],
        "detail-type": [{"prefix": "Order"}],
    }
    assert bus.kms_key_identifier == key


def test_no_archive() -> None:
    deployment, bus = run(EventBusArgs(archive=False))
    assert deployment.of_type(ARCHIVE) == []
    assert bus.archive is None
    assert bus.archive_retention_days is None


# ------------------------------------------------------------------ bus policy


def test_partner_accounts_may_put_events_on_this_bus_only() -> None:
    deployment, _ = run(EventBusArgs(partner_account_ids=["111122223333", "444455556666"]))
    policy = deployment.named("orders-policy", BUS_POLICY)
    assert policy.inputs["eventBusName"] == "orders-bus"
    document = policy_of(deployment)
    assert document["Statement"] == [
        {
            "Effect": "Allow",
            "Sid": "AllowPartnerAccountsToPutEvents",
            "Principal": {
                "AWS": ["arn:aws:iam::111122223333:root", "arn:aws:iam::444455556666:root"]
            },
            "Action": "events:PutEvents",
            "Resource": BUS_ARN,
        }
    ]
    assert find_violations(document) == []


def test_organization_uses_star_pinned_by_principal_org_id_and_sources() -> None:
    deployment, _ = run(
        EventBusArgs(organization_id=ORG, allowed_sources=["partner.shipping", "partner.tax"])
    )
    document = policy_of(deployment)
    assert document["Statement"] == [
        {
            "Effect": "Allow",
            "Sid": "AllowOrganizationToPutEvents",
            "Principal": "*",
            "Action": "events:PutEvents",
            "Resource": BUS_ARN,
            "Condition": {
                "StringEquals": {
                    "aws:PrincipalOrgID": ORG,
                    "events:source": ["partner.shipping", "partner.tax"],
                }
            },
        }
    ]
    # A "*" principal pinned to the organization is not public.
    assert find_violations(document) == []


def test_partners_and_organization_each_get_a_statement_with_the_source_condition() -> None:
    deployment, _ = run(
        EventBusArgs(
            partner_account_ids=["111122223333"],
            organization_id=ORG,
            allowed_sources=["partner.shipping"],
        )
    )
    partner, org = policy_of(deployment)["Statement"]
    assert partner["Principal"] == {"AWS": "arn:aws:iam::111122223333:root"}
    assert partner["Condition"] == {"StringEquals": {"events:source": "partner.shipping"}}
    assert org["Principal"] == "*"
    assert org["Condition"] == {
        "StringEquals": {"aws:PrincipalOrgID": ORG, "events:source": "partner.shipping"}
    }


def test_partners_may_be_restricted_to_listed_detail_types_too() -> None:
    deployment, _ = run(
        EventBusArgs(
            partner_account_ids=["111122223333"],
            organization_id=ORG,
            allowed_sources=["partner.shipping"],
            allowed_detail_types=["ParcelDelivered", "ParcelLost"],
        )
    )
    partner, org = policy_of(deployment)["Statement"]
    restricted = {
        "events:source": "partner.shipping",
        "events:detail-type": ["ParcelDelivered", "ParcelLost"],
    }
    assert partner["Condition"] == {"StringEquals": restricted}
    assert org["Condition"] == {"StringEquals": {"aws:PrincipalOrgID": ORG, **restricted}}


def test_find_violations_still_refuses_an_unrestricted_or_weakly_restricted_star() -> None:
    base = {"Effect": "Allow", "Principal": "*", "Action": "events:PutEvents", "Resource": BUS_ARN}
    weak_conditions = [
        None,
        {"StringEquals": {"events:source": "orders"}},  # restricts what, not who
        {"StringEqualsIfExists": {"aws:PrincipalOrgID": ORG}},  # passes when absent
        {"StringLike": {"aws:PrincipalOrgID": "o-*"}},
        {"StringEquals": {"aws:PrincipalOrgID": "*"}},
        {"StringEquals": {"aws:PrincipalAccount": []}},
    ]
    for condition in weak_conditions:
        statement = dict(base, Condition=condition) if condition else base
        problems = find_violations({"Statement": [statement]})
        assert len(problems) == 1, condition
        assert "public principal" in problems[0]
    pinned = dict(base, Condition={"StringEquals": {"aws:PrincipalAccount": "111122223333"}})
    assert find_violations({"Statement": [pinned]}) == []


def test_policy_document_refuses_allow_to_any_principal_without_org_or_account() -> None:
    with pytest.raises(PolicyViolation, match="Allow to any principal; restrict it with"):
        policy_document(
            [Statement(allow_any_principal=True, actions=["events:PutEvents"], resources=[BUS_ARN])]
        )


# ------------------------------------------------------------------ schemas


def test_each_document_is_published_as_given_named_by_its_detail_type() -> None:
    failed = {"$schema": DRAFT4, "type": "object"}
    deployment, bus = run(EventBusArgs(schemas={"Placed": PLACED, "Failed": failed}))
    registry = deployment.named("orders-schemas", REGISTRY)
    assert registry.parent == deployment.named("orders", COMPONENT).urn
    assert set(bus.schemas) == {"Placed", "Failed"}
    for detail_type, document in (("Placed", PLACED), ("Failed", failed)):
        created = deployment.named(f"orders-schema-{detail_type}", SCHEMA)
        assert created.parent == deployment.named("orders", COMPONENT).urn
        assert created.inputs["name"] == detail_type
        assert created.inputs["registryName"] == "orders-schemas"
        assert created.inputs["type"] == "JSONSchemaDraft4"
        assert json.loads(created.inputs["content"]) == document


# ------------------------------------------------------------------ refused args


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (
            {"archive_retention_days": 0},
            r"EventBusArgs.archive_retention_days: 0 keeps archived events forever; "
            r"choose a finite retention of 1..3650 days",
        ),
        (
            {"archive_retention_days": 3651},
            r"archive_retention_days: 3651 is outside the allowed 1..3650 days",
        ),
        (
            {"archive": False, "archive_pattern": {"source": ["orders"]}},
            r"archive_pattern: set, but archive=False",
        ),
        (
            {"partner_account_ids": ["12345"]},
            r"partner_account_ids: '12345' is not an AWS account ID; give 12 digits",
        ),
        (
            {"partner_account_ids": ["*"]},
            r"partner_account_ids: '\*' is not an AWS account ID",
        ),
        (
            {"partner_account_ids": ["111122223333", "111122223333"]},
            r"partner_account_ids: '111122223333' is listed twice",
        ),
        (
            {"partner_account_ids": "111122223333"},
            r"partner_account_ids: give a list of account IDs, not a string",
        ),
        (
            {"organization_id": "my-org"},
            r"organization_id: 'my-org' is not an AWS Organizations ID",
        ),
        (
            {"allowed_sources": ["orders"]},
            r"allowed_sources: restricts what partners may put, but no partner_account_ids "
            r"or organization_id is given",
        ),
        (
            {"organization_id": ORG, "allowed_sources": ["partner.*"]},
            r"allowed_sources: 'partner.\*' has a wildcard",
        ),
        (
            {"allowed_detail_types": ["ParcelDelivered"]},
            r"allowed_detail_types: restricts what partners may put, but no "
            r"partner_account_ids or organization_id is given",
        ),
        (
            {"organization_id": ORG, "allowed_detail_types": ["Parcel*"]},
            r"allowed_detail_types: 'Parcel\*' has a wildcard; the condition is "
            r"StringEquals, so name each detail-type exactly",
        ),
        (
            {"organization_id": ORG, "allowed_detail_types": ["A", "A"]},
            r"allowed_detail_types: a detail-type is listed twice",
        ),
        (
            {"organization_id": ORG, "allowed_detail_types": "ParcelLost"},
            r"allowed_detail_types: give a list of detail-type values, not a string",
        ),
        (
            {"schemas": [PLACED]},
            r"EventBusArgs.schemas: give a mapping of detail-type -> JSON Schema \(draft 4\) "
            r"document, got list",
        ),
        (
            {"schemas": {"Placed": ["not", "an", "object"]}},
            r"EventBusArgs.schemas\['Placed'\]: the schema of 'Placed' must be a JSON object "
            r"\(a dict\), got list",
        ),
        (
            {"schemas": {"Placed": {"bad": float("nan")}}},
            r"EventBusArgs.schemas\['Placed'\]: not JSON",
        ),
        (
            {"schemas": {"1Order": {"type": "object"}}},
            r"schema name '1Order' must start with a letter",
        ),
        (
            {"schemas": {"Order": "not a schema"}},
            r"EventBusArgs.schemas\['Order'\]: the schema of 'Order' must be a JSON object",
        ),
        ({"kms_key_identifier": " "}, r"kms_key_identifier: ' ' is not a key"),
    ],
)
def test_refused_args(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        EventBusArgs(**kwargs)


def test_invalid_archive_pattern_names_the_arg_and_field() -> None:
    with pytest.raises(
        InvalidEventPatternError,
        match=r"EventBusArgs.archive_pattern detail.amount: .*numeric",
    ):
        EventBusArgs(archive_pattern={"detail": {"amount": [{"numeric": [">", "ten"]}]}})


def test_nothing_is_declared_when_args_are_refused() -> None:
    mocks = RecordingMocks()

    def program() -> None:
        EventBus("orders", EventBusArgs(schemas={"Placed": PLACED, "Failed": "{}"}))  # type: ignore[dict-item]

    with pytest.raises(ValueError, match="the schema of 'Failed' must be a JSON object"):
        deploy(program, mocks=mocks)
    assert mocks.registrations == []
