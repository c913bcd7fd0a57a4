"""A custom EventBridge event bus with an archive, a schema registry and partner access.

The bus is encrypted at rest (an AWS-owned key by default, or your customer-managed
key), archives what it receives for a finite time so events can be replayed, and
publishes the contracts of its events to a schema registry (`{name}-schemas`, JSON
Schema draft 4) so that consumers can discover them and generate code bindings. The
contracts are given as data (detail-type -> draft 4 document), produced from the
same source the handlers validate with.

Other accounts may put events only when they are named (`partner_account_ids`) or
belong to a named AWS Organization (`organization_id`, a `*` principal pinned by
`aws:PrincipalOrgID`), optionally only with listed `source` and `detail-type` values
(`events:source`, `events:detail-type` conditions): list them whenever rules on the bus
act on events, or a partner can put the events that drive them. Without partners, no
bus policy is created and only IAM principals of this account that were granted
`put_events_statements()` can put events.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import pulumi
import pulumi_aws as aws

from pulumi_eventcraft.event_pattern import InvalidEventPatternError, Pattern, validate_pattern
from pulumi_eventcraft.iam import Condition, Principal, Statement, policy_document
from pulumi_eventcraft.tags import Tags, check_tags, tag_input

PUT_EVENTS_ACTIONS: Final = ("events:PutEvents",)
# EventBridge archive retention: a number of days; 0 means "keep forever".
MIN_ARCHIVE_RETENTION_DAYS = 1
MAX_ARCHIVE_RETENTION_DAYS = 3650
# EventBridge Schemas: CreateSchema `Content` is at most 100,000 characters, a schema
# name at most 385 (the provider also checks the first character).
MAX_SCHEMA_CONTENT = 100_000
MAX_SCHEMA_NAME = 385
# PutEvents `Source` and `DetailType` are at most 256 characters.
MAX_SOURCE_LENGTH = 256
MAX_DETAIL_TYPE_LENGTH = 256
SCHEMA_TYPE: Final = "JSONSchemaDraft4"

_ACCOUNT_ID = re.compile(r"\d{12}")
_ORGANIZATION_ID = re.compile(r"o-[a-z0-9]{10,32}")
_SCHEMA_NAME_START = re.compile(r"[A-Za-z_.@-]")

JsonSchemas = Mapping[str, Mapping[str, Any]]


# ------------------------------------------------------------------ schemas


def _schema_entries(schemas: Any) -> list[tuple[Any, Mapping[str, Any]]]:
    """(detail-type, document) pairs in the order given; each document a JSON object."""
    if not isinstance(schemas, Mapping):
        raise ValueError(
            "EventBusArgs.schemas: give a mapping of detail-type -> JSON Schema (draft 4) "
            f"document, got {type(schemas).__name__}"
        )
    entries: list[tuple[Any, Mapping[str, Any]]] = []
    for key, value in schemas.items():
        if not isinstance(value, Mapping):
            raise ValueError(
                f"EventBusArgs.schemas[{key!r}]: the schema of {key!r} must be a JSON object "
                f"(a dict), got {type(value).__name__}"
            )
        entries.append((key, value))
    return entries


def _schema_contents(schemas: JsonSchemas) -> dict[str, str]:
    """name -> schema JSON, checked; raises ValueError naming the offending schema."""
    contents: dict[str, str] = {}
    for key, schema in _schema_entries(schemas):
        if not isinstance(key, str) or not 1 <= len(key) <= MAX_SCHEMA_NAME:
            raise ValueError(
                f"EventBusArgs.schemas: schema name {key!r} must be a string of "
                f"1..{MAX_SCHEMA_NAME} characters"
            )
        if not _SCHEMA_NAME_START.match(key):
            raise ValueError(
                f"EventBusArgs.schemas: schema name {key!r} must start with a letter, "
                "'_', '.', '@' or '-'"
            )
        try:
            text = json.dumps(schema, sort_keys=True, allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"EventBusArgs.schemas[{key!r}]: not JSON ({exc})") from None
        if len(text) > MAX_SCHEMA_CONTENT:
            raise ValueError(
                f"EventBusArgs.schemas[{key!r}]: {len(text)} characters of JSON; the "
                f"registry takes at most {MAX_SCHEMA_CONTENT}"
            )
        contents[key] = text
    return contents


# --------------------------------------------------------------------- args


@dataclass(frozen=True, kw_only=True)
class EventBusArgs:
    """Arguments of an `EventBus`; every default is the secure one.

    - `archive`: True (default) = archive received events (`{name}-archive`) for replay.
    - `archive_retention_days`: 30 (default), in days, 1..3650. 0 ("keep forever") is
      refused: events carry customer data and an archive must expire.
    - `archive_pattern`: None (default) = archive every event; else an event pattern
      (dict or `Pattern`, validated) choosing what to archive. Needs `archive=True`.
    - `schemas`: {} (default) = no registry; else the event contracts as data, a
      mapping detail-type -> JSON Schema document in draft 4 (the registry's
      `JSONSchemaDraft4`), published as given: a registry `{name}-schemas`, one
      `{name}-schema-<detail-type>` each.
    - `partner_account_ids`: () (default); 12-digit AWS account IDs allowed to
      `events:PutEvents` on this bus.
    - `organization_id`: None (default); an AWS Organization (`o-...`) whose accounts
      may put events (principal `*` restricted by `aws:PrincipalOrgID`).
    - `allowed_sources`: () (default) = partners may put any `source`; else only these
      (an `events:source` condition). Needs partners or an organization.
    - `allowed_detail_types`: () (default) = partners may put any `detail-type`; else
      only these (an `events:detail-type` condition). Needs partners or an organization.
    - `kms_key_identifier`: None (default) = encrypted with an AWS-owned key; else a
      customer-managed KMS key (ARN, ID or alias) for the bus and its archive. Its key
      policy must allow `events.amazonaws.com` kms:DescribeKey, kms:GenerateDataKey and
      kms:Decrypt (EventBridge guide, "eb-encryption-key-policy"); this component
      cannot grant that.
    - `description`: None (default) = "<name>: events"; the bus's description.
    - `tags`: None (default); tags of the bus, the registry and each schema.
    """

    archive: bool = True
    archive_retention_days: int = 30
    archive_pattern: Mapping[str, Any] | Pattern | None = None
    schemas: JsonSchemas = field(default_factory=dict)
    partner_account_ids: Sequence[str] = ()
    organization_id: str | None = None
    allowed_sources: Sequence[str] = ()
    allowed_detail_types: Sequence[str] = ()
    kms_key_identifier: pulumi.Input[str] | None = None
    description: str | None = None
    tags: Tags = None

    def __post_init__(self) -> None:
        check_tags("EventBusArgs", self.tags)
        self._check_archive()
        self._check_partners()
        _schema_contents(self.schemas)
        key = self.kms_key_identifier
        if isinstance(key, str) and not key.strip():
            raise ValueError(
                f"EventBusArgs.kms_key_identifier: {key!r} is not a key; give a KMS key ARN, ID "
                "or alias, or None for the AWS-owned key"
            )

    def _check_archive(self) -> None:
        days = self.archive_retention_days
        if isinstance(days, bool) or not isinstance(days, int):
            raise ValueError(
                f"EventBusArgs.archive_retention_days: {days!r} must be a whole number of days"
            )
        if days == 0:
            raise ValueError(
                "EventBusArgs.archive_retention_days: 0 keeps archived events forever; "
                f"choose a finite retention of {MIN_ARCHIVE_RETENTION_DAYS}.."
                f"{MAX_ARCHIVE_RETENTION_DAYS} days"
            )
        if not MIN_ARCHIVE_RETENTION_DAYS <= days <= MAX_ARCHIVE_RETENTION_DAYS:
            raise ValueError(
                f"EventBusArgs.archive_retention_days: {days} is outside the allowed "
                f"{MIN_ARCHIVE_RETENTION_DAYS}..{MAX_ARCHIVE_RETENTION_DAYS} days"
            )
        if self.archive_pattern is not None:
            if not self.archive:
                raise ValueError(
                    "EventBusArgs.archive_pattern: set, but archive=False; set archive=True "
                    "or leave archive_pattern None"
                )
            self.archive_pattern_dict()

    def _check_partners(self) -> None:
        if isinstance(self.partner_account_ids, str):
            raise ValueError(
                "EventBusArgs.partner_account_ids: give a list of account IDs, not a string"
            )
        seen: set[str] = set()
        for account in self.partner_account_ids:
            if not isinstance(account, str) or not _ACCOUNT_ID.fullmatch(account):
                raise ValueError(
                    f"EventBusArgs.partner_account_ids: {account!r} is not an AWS account ID; "
                    "give 12 digits, e.g. '111122223333'"
                )
            if account in seen:
                raise ValueError(f"EventBusArgs.partner_account_ids: {account!r} is listed twice")
            seen.add(account)
        org = self.organization_id
        if org is not None and not _ORGANIZATION_ID.fullmatch(org):
            raise ValueError(
                f"EventBusArgs.organization_id: {org!r} is not an AWS Organizations ID; give "
                "one such as 'o-a1b2c3d4e5' (o- and 10 to 32 lowercase letters or digits)"
            )
        for field_name, what, limit in (
            ("allowed_sources", "source", MAX_SOURCE_LENGTH),
            ("allowed_detail_types", "detail-type", MAX_DETAIL_TYPE_LENGTH),
        ):
            self._check_allowed(field_name, what, limit)

    def _check_allowed(self, field_name: str, what: str, limit: int) -> None:
        where = f"EventBusArgs.{field_name}"
        values = getattr(self, field_name)
        if isinstance(values, str):
            raise ValueError(f"{where}: give a list of {what} values, not a string")
        values = list(values)
        if values and not self.partner_account_ids and self.organization_id is None:
            raise ValueError(
                f"{where}: restricts what partners may put, but no partner_account_ids or "
                f"organization_id is given; add partners or leave {field_name} empty"
            )
        for value in values:
            if not isinstance(value, str) or not 1 <= len(value) <= limit:
                raise ValueError(f"{where}: {value!r} must be a {what} of 1..{limit} characters")
            if "*" in value or "?" in value:
                raise ValueError(
                    f"{where}: {value!r} has a wildcard; the condition is StringEquals, so "
                    f"name each {what} exactly"
                )
        if len(set(values)) != len(values):
            raise ValueError(f"{where}: a {what} is listed twice")

    def archive_pattern_dict(self) -> dict[str, Any] | None:
        """`archive_pattern` as a validated dict (None = archive everything)."""
        pattern = self.archive_pattern
        if pattern is None:
            return None
        raw = pattern.to_dict() if isinstance(pattern, Pattern) else pattern
        try:
            return validate_pattern(raw)
        except InvalidEventPatternError as exc:
            raise InvalidEventPatternError(
                f"EventBusArgs.archive_pattern {exc.path}", exc.reason
            ) from None


# ---------------------------------------------------------------- component


class EventBus(pulumi.ComponentResource):
    """A custom event bus: encrypted, archived for a finite time, with its contracts.

    Children: `{name}-bus`, `{name}-archive` (unless `archive=False`), `{name}-policy`
    (only with partners or an organization), `{name}-schemas` and one
    `{name}-schema-<schema name>` per contract (only with `schemas`).
    Attributes: `bus`, `name` (the bus name), `arn`, `archive` (or None), `policy` (or
    None), `registry` (or None), `schemas` (dict schema name -> aws.schemas.Schema),
    `archive_retention_days`, `kms_key_identifier`.
    """

    bus: aws.cloudwatch.EventBus
    name: pulumi.Output[str]
    arn: pulumi.Output[str]
    archive: aws.cloudwatch.EventArchive | None
    policy: aws.cloudwatch.EventBusPolicy | None
    registry: aws.schemas.Registry | None
    schemas: dict[str, aws.schemas.Schema]
    archive_retention_days: int | None
    kms_key_identifier: pulumi.Input[str] | None

    def __init__(
        self,
        name: str,
        args: EventBusArgs | None = None,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        args = args or EventBusArgs()
        # Everything that can fail is computed before the first resource is declared.
        contents = _schema_contents(args.schemas)
        archive_pattern = args.archive_pattern_dict()
        super().__init__("eventcraft:index:EventBus", name, None, opts)
        self.kms_key_identifier = args.kms_key_identifier
        child = pulumi.ResourceOptions(parent=self)

        self.bus = aws.cloudwatch.EventBus(
            f"{name}-bus",
            description=args.description or f"{name}: events",
            kms_key_identifier=args.kms_key_identifier,
            tags=tag_input(args.tags),
            opts=child,
        )
        self.name = self.bus.name
        self.arn = self.bus.arn

        self.archive = None
        self.archive_retention_days = None
        if args.archive:
            self.archive_retention_days = args.archive_retention_days
            self.archive = aws.cloudwatch.EventArchive(
                f"{name}-archive",
                description=(
                    f"Events received by {name}, kept {args.archive_retention_days} days for replay"
                ),
                event_source_arn=self.bus.arn,
                retention_days=args.archive_retention_days,
                event_pattern=(None if archive_pattern is None else json.dumps(archive_pattern)),
                # Archived events are as sensitive as the bus's: the same key.
                kms_key_identifier=args.kms_key_identifier,
                opts=child,
            )

        self.policy = None
        statements = self._partner_statements(args)
        if statements:
            self.policy = aws.cloudwatch.EventBusPolicy(
                f"{name}-policy",
                event_bus_name=self.bus.name,
                policy=policy_document(statements),
                opts=child,
            )

        self.registry = None
        self.schemas = {}
        if contents:
            self.registry = aws.schemas.Registry(
                f"{name}-schemas",
                description=f"Contracts of the events on {name}",
                tags=tag_input(args.tags),
                opts=child,
            )
            for schema, content in contents.items():
                self.schemas[schema] = aws.schemas.Schema(
                    f"{name}-schema-{schema}",
                    name=schema,
                    registry_name=self.registry.name,
                    type=SCHEMA_TYPE,
                    content=content,
                    description=f"Event {schema} on {name}",
                    tags=tag_input(args.tags),
                    opts=child,
                )

        self.register_outputs(
            {
                "name": self.name,
                "arn": self.arn,
                "archiveArn": self.archive.arn if self.archive else None,
                "registryName": self.registry.name if self.registry else None,
            }
        )

    def _partner_statements(self, args: EventBusArgs) -> list[Statement]:
        sources = [
            Condition("StringEquals", key, list(values))
            for key, values in (
                ("events:source", args.allowed_sources),
                ("events:detail-type", args.allowed_detail_types),
            )
            if values
        ]
        statements: list[Statement] = []
        if args.partner_account_ids:
            statements.append(
                Statement(
                    sid="AllowPartnerAccountsToPutEvents",
                    principals=[
                        Principal(
                            "AWS",
                            [
                                f"arn:aws:iam::{account}:root"
                                for account in args.partner_account_ids
                            ],
                        )
                    ],
                    actions=PUT_EVENTS_ACTIONS,
                    resources=[self.bus.arn],
                    conditions=sources,
                )
            )
        if args.organization_id is not None:
            # "*" is not public here: aws:PrincipalOrgID pins it to the organization.
            statements.append(
                Statement(
                    sid="AllowOrganizationToPutEvents",
                    allow_any_principal=True,
                    actions=PUT_EVENTS_ACTIONS,
                    resources=[self.bus.arn],
                    conditions=[
                        Condition("StringEquals", "aws:PrincipalOrgID", [args.organization_id]),
                        *sources,
                    ],
                )
            )
        return statements

    def put_events_statements(self) -> list[Statement]:
        """`events:PutEvents` on this bus, for a producer's role.

        A customer-managed bus key needs no grant to callers: EventBridge itself uses
        the key, under the key policy.
        """
        return [Statement(actions=PUT_EVENTS_ACTIONS, resources=[self.arn])]
