"""The order-saga stack's configuration (the `order-saga:` keys of Pulumi.<stack>.yaml).

Every key, its default and what is allowed is listed in README.md; this model is
the single source of both the validation and those defaults.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

from contracts import ISO_4217, MAX_CENTS, REGISTRY
from pulumi_eventcraft.config import load_config
from pulumi_eventcraft.function import LOG_RETENTION_DAYS

NAMESPACE = "order-saga"
# PutEvents' limit on a source and a detail-type.
MAX_PARTNER_NAME = 256

SagaMode = Literal["choreography", "orchestration", "both"]


def _matching(regex: str, what: str) -> AfterValidator:
    """A string check whose error says in words what is allowed."""
    compiled = re.compile(regex)

    def check(value: str) -> str:
        if not compiled.fullmatch(value):
            raise ValueError(f"must be {what}")
        return value

    return AfterValidator(check)


AccountId = Annotated[str, _matching(r"\d{12}", "a 12-digit AWS account id")]


def _iso_currency(value: str) -> str:
    if value not in ISO_4217:
        raise ValueError("must be an ISO 4217 currency code an order can be paid in, e.g. USD")
    return value


Currency = Annotated[
    str,
    _matching(r"[A-Z]{3}", "a 3-letter ISO 4217 currency code, e.g. USD"),
    AfterValidator(_iso_currency),
]
Email = Annotated[str, _matching(r"[^@\s]+@[^@\s]+\.[^@\s]+", "an email address")]
OrganizationId = Annotated[
    str, _matching(r"o-[a-z0-9]{10,32}", "an AWS Organizations id like o-abcd123456")
]
BusArn = Annotated[
    str,
    _matching(
        r"arn:aws[a-z-]*:events:[a-z0-9-]+:\d{12}:event-bus/[A-Za-z0-9._\-/]+",
        "an event bus ARN like arn:aws:events:us-east-1:123456789012:event-bus/name",
    ),
]


_ENDPOINT = re.compile(r"https?://[A-Za-z0-9.\-]+(?::(\d{1,5}))?/?")


def _endpoint(value: str) -> str:
    match = _ENDPOINT.fullmatch(value)
    if not match or not 1 <= int(match.group(1) or 80) <= 65535:
        raise ValueError(
            "must be an http(s) URL of your AWS emulator like http://localhost:4566 "
            "(no path), its port within 1..65535"
        )
    return value


# A URL of the user's own AWS emulator: scheme, host, optional port, nothing after it
# (every service is reached at the same URL, as local emulators serve them).
EndpointUrl = Annotated[str, AfterValidator(_endpoint)]
Prefix = Annotated[
    str, _matching(r"[A-Za-z0-9_.\-]{1,64}", "1..64 letters, digits, '_', '.' or '-'")
]
Seed = Annotated[str, _matching(r"[A-Za-z0-9_.\-]{1,64}", "1..64 letters, digits, '_', '.' or '-'")]


def _log_retention(days: int) -> int:
    if days not in LOG_RETENTION_DAYS:
        allowed = ", ".join(map(str, LOG_RETENTION_DAYS))
        raise ValueError(f"must be one of the CloudWatch Logs retention periods: {allowed}")
    return days


class OrderSagaConfig(BaseModel):
    """Typed stack config. Field aliases are the keys as written in the stack file."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    saga_mode: SagaMode = Field("both", alias="sagaMode")
    # Below the largest order total (contracts.MAX_CENTS, what EventBridge numeric matching
    # compares exactly): at or above it no order could ever be flagged.
    high_value_threshold: float = Field(1000.0, alias="highValueThreshold", gt=0)
    default_currency: Currency = Field("USD", alias="defaultCurrency")
    archive_retention_days: int = Field(30, alias="archiveRetentionDays", ge=1, le=3650)
    log_retention_days: Annotated[int, AfterValidator(_log_retention)] = Field(
        14, alias="logRetentionDays"
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field("INFO", alias="logLevel")
    lambda_architecture: Literal["arm64", "x86_64"] = Field("arm64", alias="lambdaArchitecture")
    reserved_concurrency: int | None = Field(None, alias="reservedConcurrency", ge=1)
    # The account's Lambda concurrency quota (AWS's default; new accounts start lower):
    # every reservation together must leave 100 of it unreserved.
    account_concurrency_limit: int = Field(1000, alias="accountConcurrencyLimit", ge=1)
    deletion_protection: bool = Field(False, alias="deletionProtection")
    state_machine_type: Literal["STANDARD", "EXPRESS"] = Field("STANDARD", alias="stateMachineType")
    snapshot_every: int = Field(50, alias="snapshotEvery", ge=1, le=10_000)
    dlq_alarm_threshold: int = Field(1, alias="dlqAlarmThreshold", ge=1)
    alert_email: Email | None = Field(None, alias="alertEmail")
    partner_account_ids: list[AccountId] = Field(default_factory=list, alias="partnerAccountIds")
    partner_organization_id: OrganizationId | None = Field(None, alias="partnerOrganizationId")
    # What those partners may put on the order bus (the bus policy's conditions): their
    # own events only, never this system's sources or contract events.
    partner_sources: list[str] = Field(default_factory=list, alias="partnerSources")
    partner_detail_types: list[str] = Field(default_factory=list, alias="partnerDetailTypes")
    forward_to_bus_arn: BusArn | None = Field(None, alias="forwardToBusArn")
    forward_detail_types: list[str] = Field(default_factory=list, alias="forwardDetailTypes")
    activity_stream_shards: int | None = Field(None, alias="activityStreamShards", ge=1)
    # Event-time windows of the order activity feed (window_aggregate), in seconds.
    window_seconds: int = Field(300, alias="windowSeconds", ge=1, le=86_400)
    allowed_lateness_seconds: int = Field(60, alias="allowedLatenessSeconds", ge=0, le=86_400)
    # The user's own AWS emulator (LocalStack, moto server, ...): every service at this URL.
    aws_endpoint: EndpointUrl | None = Field(None, alias="awsEndpoint")
    # Knobs of the SIMULATED payment provider and carrier (domain.payments, domain.shipping).
    payment_decline_customer_prefix: Prefix | None = Field(
        None, alias="paymentDeclineCustomerPrefix"
    )
    payment_transient_failure_rate: float | None = Field(
        None, alias="paymentTransientFailureRate", ge=0, le=1
    )
    shipping_fail_customer_prefix: Prefix | None = Field(None, alias="shippingFailCustomerPrefix")
    shipping_failure_rate: float | None = Field(None, alias="shippingFailureRate", ge=0, le=1)
    failure_seed: Seed | None = Field(None, alias="failureSeed")

    @model_validator(mode="before")
    @classmethod
    def _forwarding_needs_types(cls, data: Any) -> Any:
        # A default is not validated: give the key its empty value, so that its check
        # below runs (and reports it under its own name) when only the bus is set.
        if isinstance(data, dict) and "forwardToBusArn" in data:
            data = {"forwardDetailTypes": [], **data}
        return data

    @model_validator(mode="before")
    @classmethod
    def _partners_need_what_they_may_put(cls, data: Any) -> Any:
        # As for forwarding: give the lists their empty value when partners are set, so
        # that their check below runs and names them.
        if isinstance(data, dict) and {"partnerAccountIds", "partnerOrganizationId"} & set(data):
            data = {"partnerSources": [], "partnerDetailTypes": [], **data}
        return data

    @field_validator("partner_sources", "partner_detail_types")
    @classmethod
    def _partners_put_only_their_own_events(
        cls, value: list[str], info: ValidationInfo
    ) -> list[str]:
        sources = info.field_name == "partner_sources"
        what = "source" if sources else "detail-type"
        partners = info.data.get("partner_account_ids") or info.data.get("partner_organization_id")
        if (
            value
            and not partners
            and {"partner_account_ids", "partner_organization_id"} <= set(info.data)
        ):
            raise ValueError(
                "restricts what partners may put, but neither partnerAccountIds nor "
                "partnerOrganizationId is set: set partners or leave it empty"
            )
        if partners and not value:
            example = '["partner.shipping"]' if sources else '["ParcelDelivered"]'
            raise ValueError(
                "is empty, but partnerAccountIds / partnerOrganizationId let other accounts "
                f"put events on the order bus: list each {what} they may put (their own, e.g. "
                f"{example}); the rules act only on this system's own events"
            )
        for item in value:
            if not 1 <= len(item) <= MAX_PARTNER_NAME or "*" in item or "?" in item:
                raise ValueError(f"{item!r} must be a {what} of 1..256 characters, no wildcards")
            if sources and item.startswith((f"{NAMESPACE}.", "aws.")):
                raise ValueError(
                    f"{item!r} is a source of this system ({NAMESPACE}.*) or of AWS (aws.*): "
                    "a partner putting it could drive the saga; give the partner's own source"
                )
            if not sources and item in REGISTRY:
                raise ValueError(
                    f"{item!r} is an event of this system's contracts: a partner putting it "
                    "could drive the saga; give the partner's own detail-type"
                )
        if len(set(value)) != len(value):
            raise ValueError(f"lists a {what} twice")
        return value

    @field_validator("forward_detail_types")
    @classmethod
    def _forwarded_types_are_contracts(cls, value: list[str], info: ValidationInfo) -> list[str]:
        # forwardToBusArn is declared (so validated) first: info.data has it when valid.
        bus = info.data.get("forward_to_bus_arn")
        if value and bus is None and "forward_to_bus_arn" in info.data:
            raise ValueError("forwards events, but forwardToBusArn is not set: set both or neither")
        if bus is not None and not value:
            raise ValueError(
                f"is empty, but forwardToBusArn is set ({bus}): list the detail-types to "
                'forward there (e.g. ["OrderCompleted"]), or unset forwardToBusArn'
            )
        known = frozenset(REGISTRY)
        unknown = [t for t in value if t not in known]
        if unknown:
            raise ValueError(
                f"{', '.join(map(repr, unknown))} is not an event of the contracts; allowed: "
                f"{', '.join(sorted(known))}"
            )
        if len(set(value)) != len(value):
            raise ValueError("lists a detail-type twice")
        return value

    @field_validator("high_value_threshold")
    @classmethod
    def _whole_cents(cls, value: float) -> float:
        # Orders are compared in cents: a fraction of a cent would round away (0.001 -> 0
        # flags every order).
        if abs(value * 100 - round(value * 100)) > 1e-6:
            raise ValueError("must be a whole number of cents (at most 2 decimals)")
        if round(value * 100) >= MAX_CENTS:
            raise ValueError(
                f"must be below {MAX_CENTS // 100}: an order totals at most {MAX_CENTS} "
                "cents (the largest number EventBridge's numeric matching compares), so "
                "no order would ever be reviewed"
            )
        return value

    @field_validator("partner_account_ids")
    @classmethod
    def _each_partner_once(cls, value: list[str]) -> list[str]:
        twice = sorted({account for account in value if value.count(account) > 1})
        if twice:
            raise ValueError(f"lists account {', '.join(twice)} twice")
        return value

    @field_validator("allowed_lateness_seconds")
    @classmethod
    def _lateness_within_a_window(cls, value: int, info: ValidationInfo) -> int:
        window = info.data.get("window_seconds")
        if window is not None and value > window:
            raise ValueError(
                f"must be at most windowSeconds ({window}): a window accepts late events "
                "until the watermark passes its end"
            )
        return value

    @property
    def high_value_threshold_cents(self) -> int:
        """The threshold in minor units (cents): what OrderPlaced.totalCents is compared to."""
        return round(self.high_value_threshold * 100)


def load() -> OrderSagaConfig:
    """Read `order-saga:*` of the current stack; raises ConfigError on any bad key."""
    return load_config(OrderSagaConfig, NAMESPACE)
