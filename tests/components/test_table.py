"""Table: the resources and policies a user sees in `pulumi preview`, and refusals."""

from __future__ import annotations

import json
import re
from typing import Any

import pulumi
import pytest

from eventcraft_sandbox.mock_deploy import Deployment, RecordingMocks, deploy
from pulumi_eventcraft.iam import policy_document
from pulumi_eventcraft.table import (
    GlobalSecondaryIndex,
    KeyAttribute,
    Table,
    TableArgs,
    event_store_table,
    idempotency_table,
    outbox_table,
    snapshot_table,
    state_table,
)

TABLE = "aws:dynamodb/table:Table"
ARN = "arn:aws:dynamodb:us-east-1:123456789012:table"
KEY_ARN = "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"


def deploy_table(args: TableArgs, name: str = "orders") -> tuple[Deployment, Any]:
    def program() -> None:
        table = Table(name, args)
        pulumi.export("read", policy_document(table.read_statements()))
        pulumi.export("write", policy_document(table.write_statements()))
        pulumi.export("read_write", policy_document(table.read_write_statements()))
        if table.has_stream:
            pulumi.export("stream", policy_document(table.stream_read_statements()))
            pulumi.export("stream_arn", table.stream_arn)
        pulumi.export("name", table.name)

    d = deploy(program)
    return d, d.named(f"{name}-table", TABLE)


def statements(d: Deployment, key: str) -> list[dict[str, Any]]:
    return json.loads(d.outputs[key])["Statement"]


def test_defaults_are_encrypted_recoverable_on_demand() -> None:
    d, table = deploy_table(state_table("orderId"))
    component = d.named("orders", "eventcraft:index:Table")
    assert table.parent == component.urn
    assert table.inputs["hashKey"] == "orderId"
    assert "rangeKey" not in table.inputs
    assert table.inputs["attributes"] == [{"name": "orderId", "type": "S"}]
    assert table.inputs["billingMode"] == "PAY_PER_REQUEST"
    assert table.inputs["pointInTimeRecovery"] == {"enabled": True}
    # enabled without a key ARN: the AWS-managed KMS key (alias/aws/dynamodb).
    assert table.inputs["serverSideEncryption"] == {"enabled": True}
    assert table.inputs["deletionProtectionEnabled"] is False
    assert table.inputs["streamEnabled"] is False
    assert "streamViewType" not in table.inputs
    assert "ttl" not in table.inputs
    assert "readCapacity" not in table.inputs
    assert d.outputs["name"] == "orders-table"


def test_read_write_statements_are_exact_and_scoped_to_the_table() -> None:
    d, _ = deploy_table(state_table("orderId"))
    assert statements(d, "read") == [
        {
            "Effect": "Allow",
            "Action": [
                "dynamodb:GetItem",
                "dynamodb:BatchGetItem",
                "dynamodb:Query",
                "dynamodb:ConditionCheckItem",
            ],
            "Resource": f"{ARN}/orders-table",
        }
    ]
    assert statements(d, "write") == [
        {
            "Effect": "Allow",
            "Action": [
                "dynamodb:PutItem",
                "dynamodb:UpdateItem",
                "dynamodb:DeleteItem",
                "dynamodb:BatchWriteItem",
            ],
            "Resource": f"{ARN}/orders-table",
        }
    ]
    rw = statements(d, "read_write")
    assert [st["Action"] for st in rw] == [
        statements(d, "read")[0]["Action"],
        statements(d, "write")[0]["Action"],
    ]


def test_event_store_preset_has_version_sort_key_and_new_image_stream() -> None:
    d, table = deploy_table(event_store_table(), name="events")
    assert table.inputs["hashKey"] == "aggregateId"
    assert table.inputs["rangeKey"] == "version"
    assert table.inputs["attributes"] == [
        {"name": "aggregateId", "type": "S"},
        {"name": "version", "type": "N"},
    ]
    assert table.inputs["streamEnabled"] is True
    assert table.inputs["streamViewType"] == "NEW_IMAGE"
    stream_arn = f"{ARN}/events-table/stream/2026-01-01T00:00:00.000"
    assert d.outputs["stream_arn"] == stream_arn
    assert statements(d, "stream") == [
        {
            "Effect": "Allow",
            "Action": [
                "dynamodb:DescribeStream",
                "dynamodb:GetRecords",
                "dynamodb:GetShardIterator",
                "dynamodb:ListStreams",
            ],
            "Resource": stream_arn,
        }
    ]


def test_event_store_overrides_are_applied_and_validated() -> None:
    _, table = deploy_table(event_store_table(deletion_protection=True), name="events")
    assert table.inputs["deletionProtectionEnabled"] is True
    with pytest.raises(ValueError, match=r"overrides: \['colour'\] are not TableArgs fields"):
        event_store_table(colour="red")
    with pytest.raises(ValueError, match="ttl_attribute: 'version' is a key attribute"):
        event_store_table(ttl_attribute="version")


def test_outbox_preset_streams_new_images_and_expires_rows() -> None:
    _, table = deploy_table(outbox_table(), name="outbox")
    assert table.inputs["hashKey"] == "pk"
    assert table.inputs["streamViewType"] == "NEW_IMAGE"
    assert table.inputs["ttl"] == {"attributeName": "expiresAt", "enabled": True}


def test_idempotency_preset_matches_powertools_layout() -> None:
    _, table = deploy_table(idempotency_table(), name="idempotency")
    assert table.inputs["hashKey"] == "id"
    assert table.inputs["attributes"] == [{"name": "id", "type": "S"}]
    assert table.inputs["ttl"] == {"attributeName": "expiration", "enabled": True}
    assert table.inputs["streamEnabled"] is False


def test_snapshot_and_state_presets() -> None:
    _, snap = deploy_table(snapshot_table(), name="snapshots")
    assert snap.inputs["hashKey"] == "aggregateId"
    assert snap.inputs["streamEnabled"] is False
    _, state = deploy_table(state_table("sku", stream=True), name="inventory")
    assert state.inputs["streamViewType"] == "NEW_AND_OLD_IMAGES"
    _, keys = deploy_table(state_table(KeyAttribute("n", "N"), stream="KEYS_ONLY"), name="k")
    assert keys.inputs["attributes"] == [{"name": "n", "type": "N"}]
    assert keys.inputs["streamViewType"] == "KEYS_ONLY"


def test_customer_kms_key_is_used_and_granted() -> None:
    d, table = deploy_table(state_table("orderId", kms_key_arn=KEY_ARN))
    assert table.inputs["serverSideEncryption"] == {"enabled": True, "kmsKeyArn": KEY_ARN}
    assert statements(d, "read")[1] == {
        "Effect": "Allow",
        "Action": "kms:Decrypt",
        "Resource": KEY_ARN,
    }
    assert statements(d, "write")[1]["Action"] == ["kms:Decrypt", "kms:GenerateDataKey"]
    assert len(statements(d, "read_write")) == 3


def test_provisioned_table_and_index_capacity() -> None:
    args = TableArgs(
        hash_key=KeyAttribute("pk"),
        range_key=KeyAttribute("sk"),
        billing_mode="PROVISIONED",
        read_capacity=5,
        write_capacity=2,
        global_secondary_indexes=[
            GlobalSecondaryIndex(
                name="by-status",
                hash_key=KeyAttribute("status"),
                range_key=KeyAttribute("createdAt", "N"),
                read_capacity=1,
                write_capacity=1,
            )
        ],
    )
    d, table = deploy_table(args)
    assert table.inputs["billingMode"] == "PROVISIONED"
    assert (table.inputs["readCapacity"], table.inputs["writeCapacity"]) == (5.0, 2.0)
    assert table.inputs["attributes"] == [
        {"name": "pk", "type": "S"},
        {"name": "sk", "type": "S"},
        {"name": "status", "type": "S"},
        {"name": "createdAt", "type": "N"},
    ]
    assert table.inputs["globalSecondaryIndexes"] == [
        {
            "name": "by-status",
            # key_schemas: hash_key / range_key of an index are deprecated (pulumi-aws 7.51).
            "keySchemas": [
                {"attributeName": "status", "keyType": "HASH"},
                {"attributeName": "createdAt", "keyType": "RANGE"},
            ],
            "projectionType": "ALL",
            "readCapacity": 1.0,
            "writeCapacity": 1.0,
        }
    ]
    # Queries on an index are authorized against the index ARN.
    assert statements(d, "read")[0]["Resource"] == [
        f"{ARN}/orders-table",
        f"{ARN}/orders-table/index/*",
    ]
    assert statements(d, "write")[0]["Resource"] == f"{ARN}/orders-table"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (
            {"ttl_attribute": "pk"},
            "ttl_attribute: 'pk' is a key attribute; TTL needs its own Number attribute",
        ),
        (
            {"billing_mode": "PROVISIONED"},
            "read_capacity: billing_mode PROVISIONED needs read_capacity and write_capacity",
        ),
        (
            {"billing_mode": "PROVISIONED", "read_capacity": 5},
            "write_capacity: billing_mode PROVISIONED needs",
        ),
        (
            {"read_capacity": 5, "write_capacity": 5},
            "read_capacity/write_capacity: only with billing_mode='PROVISIONED'",
        ),
        ({"billing_mode": "ON_DEMAND"}, "billing_mode: 'ON_DEMAND' is not allowed"),
        ({"stream_view_type": "NEW"}, "stream_view_type: 'NEW' is not allowed"),
        ({"range_key": KeyAttribute("pk")}, "range_key: 'pk' is already the hash_key"),
        ({"kms_key_arn": "alias/aws/dynamodb"}, "kms_key_arn: 'alias/aws/dynamodb' is not a KMS"),
        (
            {
                "global_secondary_indexes": [
                    GlobalSecondaryIndex(name="by-pk", hash_key=KeyAttribute("pk", "N"))
                ]
            },
            r"global_secondary_indexes\[by-pk\].hash_key: attribute 'pk' is typed 'N' here",
        ),
        (
            {
                "global_secondary_indexes": [
                    GlobalSecondaryIndex(name="by-x", hash_key=KeyAttribute("x")),
                    GlobalSecondaryIndex(name="by-x", hash_key=KeyAttribute("y")),
                ]
            },
            r"global_secondary_indexes: duplicate index names \['by-x'\]",
        ),
        (
            {
                "billing_mode": "PROVISIONED",
                "read_capacity": 1,
                "write_capacity": 1,
                "global_secondary_indexes": [
                    GlobalSecondaryIndex(name="by-x", hash_key=KeyAttribute("x"))
                ],
            },
            r"global_secondary_indexes\[by-x\].read_capacity: billing_mode PROVISIONED",
        ),
    ],
)
def test_refuses_impossible_tables(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        TableArgs(hash_key=KeyAttribute("pk"), **kwargs)


def test_refuses_bad_keys_and_indexes() -> None:
    with pytest.raises(
        ValueError, match=re.escape("KeyAttribute.type: 'X' for 'pk' is not allowed")
    ):
        KeyAttribute("pk", "X")  # type: ignore[arg-type]
    with pytest.raises(
        ValueError, match=re.escape("KeyAttribute.name: '' must be 1..255 characters")
    ):
        KeyAttribute("")
    with pytest.raises(ValueError, match="non_key_attributes: index 'by-x' projects INCLUDE"):
        GlobalSecondaryIndex(name="by-x", hash_key=KeyAttribute("x"), projection_type="INCLUDE")


def test_stream_statements_need_a_stream_and_no_resource_is_created_for_bad_args() -> None:
    def program() -> None:
        Table("plain", state_table("pk")).stream_read_statements()

    with pytest.raises(
        ValueError, match=re.escape("table 'plain' has no stream; set TableArgs.stream_view")
    ):
        deploy(program)

    # Invalid args fail before any resource is registered.
    recorder = RecordingMocks()

    def bad_program() -> None:
        Table("bad", TableArgs(hash_key=KeyAttribute("pk"), ttl_attribute="pk"))

    with pytest.raises(ValueError, match="ttl_attribute"):
        deploy(bad_program, mocks=recorder)
    assert recorder.registrations == []
