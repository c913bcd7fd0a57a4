"""DynamoDB tables with secure defaults, access statements, and presets for the patterns.

A `Table` is encrypted with KMS (the AWS-managed `alias/aws/dynamodb` key unless a
customer key is given), has point-in-time recovery on, and bills per request unless
asked otherwise. Consumers get exactly the actions they need through
`read_statements()`, `write_statements()`, `read_write_statements()` and
`stream_read_statements()`, each scoped to this table's ARNs.

Presets return `TableArgs` with the layouts the patterns need (event store, snapshots,
outbox, Powertools idempotency, state tables); `**overrides` replace any field and the
result is validated again.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import pulumi
import pulumi_aws as aws

from pulumi_eventcraft.iam import Statement
from pulumi_eventcraft.tags import Tags, check_tags, tag_input

AttributeType = Literal["S", "N", "B"]
StreamViewType = Literal["NEW_IMAGE", "NEW_AND_OLD_IMAGES", "KEYS_ONLY", "OLD_IMAGE"]
BillingMode = Literal["PAY_PER_REQUEST", "PROVISIONED"]
ProjectionType = Literal["ALL", "KEYS_ONLY", "INCLUDE"]

ATTRIBUTE_TYPES: tuple[str, ...] = ("S", "N", "B")
STREAM_VIEW_TYPES: tuple[str, ...] = ("NEW_IMAGE", "NEW_AND_OLD_IMAGES", "KEYS_ONLY", "OLD_IMAGE")
BILLING_MODES: tuple[str, ...] = ("PAY_PER_REQUEST", "PROVISIONED")
PROJECTION_TYPES: tuple[str, ...] = ("ALL", "KEYS_ONLY", "INCLUDE")
# DynamoDB quota: 20 global secondary indexes per table (the default, adjustable).
MAX_GLOBAL_SECONDARY_INDEXES = 20
_INDEX_NAME = re.compile(r"[A-Za-z0-9_.-]{3,255}")

READ_ACTIONS: tuple[str, ...] = (
    "dynamodb:GetItem",
    "dynamodb:BatchGetItem",
    "dynamodb:Query",
    # A TransactWriteItems ConditionCheck reads an item to test a condition.
    "dynamodb:ConditionCheckItem",
)
WRITE_ACTIONS: tuple[str, ...] = (
    "dynamodb:PutItem",
    "dynamodb:UpdateItem",
    "dynamodb:DeleteItem",
    "dynamodb:BatchWriteItem",
)
STREAM_READ_ACTIONS: tuple[str, ...] = (
    "dynamodb:DescribeStream",
    "dynamodb:GetRecords",
    "dynamodb:GetShardIterator",
    # Lambda's CreateEventSourceMapping checks the role for all four "on your stream";
    # AWS's example policy for a Lambda stream consumer scopes them all to the stream ARN.
    "dynamodb:ListStreams",
)


@dataclass(frozen=True)
class KeyAttribute:
    """A key attribute: its name and DynamoDB type ("S" string, "N" number, "B" binary)."""

    name: str
    type: AttributeType = "S"

    def __post_init__(self) -> None:
        if not self.name or len(self.name) > 255:
            raise ValueError(f"KeyAttribute.name: {self.name!r} must be 1..255 characters")
        if self.type not in ATTRIBUTE_TYPES:
            raise ValueError(
                f"KeyAttribute.type: {self.type!r} for {self.name!r} is not allowed; "
                f"use one of {', '.join(ATTRIBUTE_TYPES)}"
            )


@dataclass(frozen=True, kw_only=True)
class GlobalSecondaryIndex:
    """A global secondary index.

    Defaults: no range key, `projection_type="ALL"`; `read_capacity`/`write_capacity`
    (units per second) only with a PROVISIONED table, where they are required.
    """

    name: str
    hash_key: KeyAttribute
    range_key: KeyAttribute | None = None
    projection_type: ProjectionType = "ALL"
    non_key_attributes: Sequence[str] = ()
    read_capacity: int | None = None
    write_capacity: int | None = None

    def __post_init__(self) -> None:
        if not _INDEX_NAME.fullmatch(self.name):
            raise ValueError(
                f"GlobalSecondaryIndex.name: {self.name!r} must be 3..255 characters of "
                "letters, digits, '_', '-' or '.'"
            )
        if self.projection_type not in PROJECTION_TYPES:
            raise ValueError(
                f"GlobalSecondaryIndex.projection_type: {self.projection_type!r} is not "
                f"allowed; use one of {', '.join(PROJECTION_TYPES)}"
            )
        if self.projection_type == "INCLUDE" and not self.non_key_attributes:
            raise ValueError(
                f"GlobalSecondaryIndex.non_key_attributes: index {self.name!r} projects "
                "INCLUDE, so name the attributes to include"
            )
        if self.projection_type != "INCLUDE" and self.non_key_attributes:
            raise ValueError(
                f"GlobalSecondaryIndex.non_key_attributes: index {self.name!r} projects "
                f"{self.projection_type}; non_key_attributes only go with INCLUDE"
            )
        if self.range_key is not None and self.range_key.name == self.hash_key.name:
            raise ValueError(
                f"GlobalSecondaryIndex.range_key: index {self.name!r} uses "
                f"{self.hash_key.name!r} as both hash and range key; pick another range key"
            )


@dataclass(frozen=True, kw_only=True)
class TableArgs:
    """Arguments of a `Table`; every default is the secure one.

    - `hash_key` (required) and `range_key` (default None): the primary key.
    - `stream_view_type`: None (default) = no stream; otherwise the stream's view.
    - `ttl_attribute`: None (default) = no TTL; else the Number attribute holding the
      expiry time in epoch seconds. It must not be a key attribute.
    - `billing_mode`: "PAY_PER_REQUEST" (default) or "PROVISIONED", which needs
      `read_capacity` and `write_capacity` (units per second, >= 1).
    - `point_in_time_recovery`: True (default): 35 days of continuous backups.
    - `kms_key_arn`: None (default) = encrypted with the AWS-managed KMS key
      (`alias/aws/dynamodb`); an ARN = that customer-managed key, and the access
      statements then include the KMS actions on it.
    - `deletion_protection`: False (default); turn it on for tables holding history.
    - `global_secondary_indexes`: () (default).
    - `tags`: None (default); the table's tags.
    """

    hash_key: KeyAttribute
    range_key: KeyAttribute | None = None
    stream_view_type: StreamViewType | None = None
    ttl_attribute: str | None = None
    billing_mode: BillingMode = "PAY_PER_REQUEST"
    read_capacity: int | None = None
    write_capacity: int | None = None
    point_in_time_recovery: bool = True
    kms_key_arn: pulumi.Input[str] | None = None
    deletion_protection: bool = False
    global_secondary_indexes: Sequence[GlobalSecondaryIndex] = ()
    tags: Tags = None

    def __post_init__(self) -> None:
        self._validate()
        check_tags("TableArgs", self.tags)

    def _validate(self) -> None:  # noqa: PLR0912 (one check per rule reads best)
        if not isinstance(self.hash_key, KeyAttribute):
            raise ValueError(
                f"hash_key: {self.hash_key!r} must be a KeyAttribute, e.g. KeyAttribute('pk', 'S')"
            )
        if self.range_key is not None and self.range_key.name == self.hash_key.name:
            raise ValueError(
                f"range_key: {self.range_key.name!r} is already the hash_key; "
                "pick another attribute or no range key"
            )
        if self.stream_view_type is not None and self.stream_view_type not in STREAM_VIEW_TYPES:
            raise ValueError(
                f"stream_view_type: {self.stream_view_type!r} is not allowed; use None "
                f"(no stream) or one of {', '.join(STREAM_VIEW_TYPES)}"
            )
        if self.billing_mode not in BILLING_MODES:
            raise ValueError(
                f"billing_mode: {self.billing_mode!r} is not allowed; use one of "
                f"{', '.join(BILLING_MODES)}"
            )
        provisioned = self.billing_mode == "PROVISIONED"
        _check_capacity("", self.read_capacity, self.write_capacity, provisioned=provisioned)
        key_types: dict[str, str] = {}
        for where, key in self._keys():
            known = key_types.setdefault(key.name, key.type)
            if known != key.type:
                raise ValueError(
                    f"{where}: attribute {key.name!r} is typed {key.type!r} here but "
                    f"{known!r} elsewhere; an attribute has one type in every key"
                )
        if self.ttl_attribute is not None:
            if not self.ttl_attribute or len(self.ttl_attribute) > 255:
                raise ValueError(
                    f"ttl_attribute: {self.ttl_attribute!r} must be 1..255 characters or None"
                )
            if self.ttl_attribute in key_types:
                raise ValueError(
                    f"ttl_attribute: {self.ttl_attribute!r} is a key attribute; TTL needs "
                    "its own Number attribute (epoch seconds), e.g. 'expiresAt'"
                )
        if len(self.global_secondary_indexes) > MAX_GLOBAL_SECONDARY_INDEXES:
            raise ValueError(
                f"global_secondary_indexes: {len(self.global_secondary_indexes)} indexes; "
                f"DynamoDB allows at most {MAX_GLOBAL_SECONDARY_INDEXES}"
            )
        names = [gsi.name for gsi in self.global_secondary_indexes]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"global_secondary_indexes: duplicate index names {duplicates}")
        for gsi in self.global_secondary_indexes:
            _check_capacity(
                f"global_secondary_indexes[{gsi.name}].",
                gsi.read_capacity,
                gsi.write_capacity,
                provisioned=provisioned,
            )
        if isinstance(self.kms_key_arn, str) and not re.fullmatch(
            r"arn:aws[a-z-]*:kms:[a-z0-9-]+:\d{12}:key/.+", self.kms_key_arn
        ):
            raise ValueError(
                f"kms_key_arn: {self.kms_key_arn!r} is not a KMS key ARN "
                "(arn:aws:kms:<region>:<account>:key/<id>); use None for the AWS-managed key"
            )

    def _keys(self) -> list[tuple[str, KeyAttribute]]:
        keys = [("hash_key", self.hash_key)]
        if self.range_key is not None:
            keys.append(("range_key", self.range_key))
        for gsi in self.global_secondary_indexes:
            keys.append((f"global_secondary_indexes[{gsi.name}].hash_key", gsi.hash_key))
            if gsi.range_key is not None:
                keys.append((f"global_secondary_indexes[{gsi.name}].range_key", gsi.range_key))
        return keys

    def attribute_definitions(self) -> list[KeyAttribute]:
        """Every key attribute of the table and its indexes, once, in first-use order."""
        seen: dict[str, KeyAttribute] = {}
        for _, key in self._keys():
            seen.setdefault(key.name, key)
        return list(seen.values())


def _check_capacity(prefix: str, read: int | None, write: int | None, *, provisioned: bool) -> None:
    if provisioned:
        for arg, value in (("read_capacity", read), ("write_capacity", write)):
            if value is None or value < 1:
                raise ValueError(
                    f"{prefix}{arg}: billing_mode PROVISIONED needs read_capacity and "
                    f"write_capacity >= 1 (units per second), got {value!r}; or use "
                    "billing_mode='PAY_PER_REQUEST'"
                )
    elif read is not None or write is not None:
        raise ValueError(
            f"{prefix}read_capacity/write_capacity: only with billing_mode='PROVISIONED'; "
            "PAY_PER_REQUEST tables scale on demand"
        )


class Table(pulumi.ComponentResource):
    """A DynamoDB table (`eventcraft:index:Table`), encrypted, with point-in-time recovery.

    Attributes: `table` (aws.dynamodb.Table), `arn`, `name`, `stream_arn` (None without a
    stream), `args`.
    """

    table: aws.dynamodb.Table
    arn: pulumi.Output[str]
    name: pulumi.Output[str]
    stream_arn: pulumi.Output[str] | None

    def __init__(
        self, name: str, args: TableArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        if not isinstance(args, TableArgs):
            raise ValueError(f"args: expected TableArgs, got {type(args).__name__}")
        super().__init__("eventcraft:index:Table", name, None, opts)
        self.args = args
        provisioned = args.billing_mode == "PROVISIONED"
        self.table = aws.dynamodb.Table(
            f"{name}-table",
            attributes=[
                aws.dynamodb.TableAttributeArgs(name=a.name, type=a.type)
                for a in args.attribute_definitions()
            ],
            hash_key=args.hash_key.name,
            range_key=args.range_key.name if args.range_key else None,
            billing_mode=args.billing_mode,
            read_capacity=args.read_capacity if provisioned else None,
            write_capacity=args.write_capacity if provisioned else None,
            stream_enabled=args.stream_view_type is not None,
            stream_view_type=args.stream_view_type,
            ttl=(
                aws.dynamodb.TableTtlArgs(attribute_name=args.ttl_attribute, enabled=True)
                if args.ttl_attribute
                else None
            ),
            point_in_time_recovery=aws.dynamodb.TablePointInTimeRecoveryArgs(
                enabled=args.point_in_time_recovery
            ),
            # enabled=True without a key ARN = the AWS-managed KMS key, not the AWS-owned one.
            server_side_encryption=aws.dynamodb.TableServerSideEncryptionArgs(
                enabled=True, kms_key_arn=args.kms_key_arn
            ),
            deletion_protection_enabled=args.deletion_protection,
            global_secondary_indexes=[
                aws.dynamodb.TableGlobalSecondaryIndexArgs(
                    name=gsi.name,
                    # key_schemas, not hash_key / range_key (deprecated in pulumi-aws 7.51).
                    key_schemas=[
                        aws.dynamodb.TableGlobalSecondaryIndexKeySchemaArgs(
                            attribute_name=key.name, key_type=key_type
                        )
                        for key, key_type in ((gsi.hash_key, "HASH"), (gsi.range_key, "RANGE"))
                        if key is not None
                    ],
                    projection_type=gsi.projection_type,
                    non_key_attributes=list(gsi.non_key_attributes) or None,
                    read_capacity=gsi.read_capacity,
                    write_capacity=gsi.write_capacity,
                )
                for gsi in args.global_secondary_indexes
            ]
            or None,
            tags=tag_input(args.tags),
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.arn = self.table.arn
        self.name = self.table.name
        self.stream_arn = self.table.stream_arn if args.stream_view_type else None
        self.register_outputs({"arn": self.arn, "name": self.name, "stream_arn": self.stream_arn})

    @property
    def has_stream(self) -> bool:
        """Whether the table has a stream (`stream_view_type` was set)."""
        return self.stream_arn is not None

    def _kms(self, actions: Sequence[str]) -> list[Statement]:
        if self.args.kms_key_arn is None:
            return []
        return [Statement(actions=list(actions), resources=[self.args.kms_key_arn])]

    def _read_statement(self) -> Statement:
        resources: list[pulumi.Input[str]] = [self.arn]
        if self.args.global_secondary_indexes:
            # Queries on an index are authorized against the index ARN.
            resources.append(self.arn.apply(lambda arn: f"{arn}/index/*"))
        return Statement(actions=list(READ_ACTIONS), resources=resources)

    def _write_statement(self) -> Statement:
        return Statement(actions=list(WRITE_ACTIONS), resources=[self.arn])

    def read_statements(self) -> list[Statement]:
        """GetItem, BatchGetItem, Query, ConditionCheckItem on the table (and its indexes).

        With a customer KMS key, also kms:Decrypt on that key.
        """
        return [self._read_statement(), *self._kms(["kms:Decrypt"])]

    def write_statements(self) -> list[Statement]:
        """PutItem, UpdateItem, DeleteItem, BatchWriteItem on the table.

        With a customer KMS key, also kms:Decrypt and kms:GenerateDataKey on that key.
        """
        return [self._write_statement(), *self._kms(["kms:Decrypt", "kms:GenerateDataKey"])]

    def read_write_statements(self) -> list[Statement]:
        """`read_statements()` and `write_statements()` together."""
        return [
            self._read_statement(),
            self._write_statement(),
            *self._kms(["kms:Decrypt", "kms:GenerateDataKey"]),
        ]

    def stream_read_statements(self) -> list[Statement]:
        """DescribeStream, GetRecords, GetShardIterator, ListStreams on the table's stream.

        Raises ValueError when the table has no stream.
        """
        if self.stream_arn is None:
            raise ValueError(
                f"table {self.pulumi_resource_name!r} has no stream; set "
                "TableArgs.stream_view_type to read its stream"
            )
        return [
            Statement(actions=list(STREAM_READ_ACTIONS), resources=[self.stream_arn]),
            *self._kms(["kms:Decrypt"]),
        ]


# ------------------------------------------------------------------------ presets


def _preset(base: TableArgs, overrides: dict[str, Any]) -> TableArgs:
    unknown = sorted(set(overrides) - {f.name for f in dataclasses.fields(TableArgs)})
    if unknown:
        raise ValueError(f"overrides: {unknown} are not TableArgs fields")
    # replace() runs __post_init__, so overridden presets are validated again.
    return dataclasses.replace(base, **overrides)


def event_store_table(**overrides: Any) -> TableArgs:
    """Event store: `aggregateId` (S) + `version` (N), NEW_IMAGE stream for projections.

    Appends are conditional on `attribute_not_exists(version)`, so the key is the
    optimistic-concurrency check.
    """
    return _preset(
        TableArgs(
            hash_key=KeyAttribute("aggregateId", "S"),
            range_key=KeyAttribute("version", "N"),
            stream_view_type="NEW_IMAGE",
        ),
        overrides,
    )


def snapshot_table(**overrides: Any) -> TableArgs:
    """Aggregate snapshots: one item per `aggregateId` (S), no stream."""
    return _preset(TableArgs(hash_key=KeyAttribute("aggregateId", "S")), overrides)


# The outbox's sparse index of unpublished rows (eventcraft.outbox's row layout).
OUTBOX_PENDING_INDEX = GlobalSecondaryIndex(
    name="pending",
    hash_key=KeyAttribute("pendingShard", "S"),
    range_key=KeyAttribute("createdAt", "S"),
)


def outbox_table(**overrides: Any) -> TableArgs:
    """Transactional outbox: `pk` (S), NEW_IMAGE stream to the relay, TTL on `expiresAt`,
    and the sparse index `pending` (`pendingShard`, `createdAt`): the rows not yet
    published, which the outbox sweeper republishes."""
    return _preset(
        TableArgs(
            hash_key=KeyAttribute("pk", "S"),
            stream_view_type="NEW_IMAGE",
            ttl_attribute="expiresAt",
            global_secondary_indexes=(OUTBOX_PENDING_INDEX,),
        ),
        overrides,
    )


def idempotency_table(**overrides: Any) -> TableArgs:
    """Powertools idempotency store: key `id` (S), TTL on `expiration`.

    The layout `DynamoDBPersistenceLayer` expects with its defaults (key_attr="id",
    expiry_attr="expiration").
    """
    return _preset(
        TableArgs(hash_key=KeyAttribute("id", "S"), ttl_attribute="expiration"), overrides
    )


def state_table(
    hash_key: str | KeyAttribute = "pk",
    *,
    stream: bool | StreamViewType = False,
    **overrides: Any,
) -> TableArgs:
    """A state table (entities, read models) keyed by `hash_key`.

    `hash_key` is a name (type S) or a KeyAttribute; default "pk". `stream`: False
    (default) = no stream, True = NEW_AND_OLD_IMAGES, or a stream view type.
    """
    key = hash_key if isinstance(hash_key, KeyAttribute) else KeyAttribute(hash_key, "S")
    view: StreamViewType | None
    if stream is True:
        view = "NEW_AND_OLD_IMAGES"
    elif stream is False:
        view = None
    else:
        view = stream
    return _preset(TableArgs(hash_key=key, stream_view_type=view), overrides)
