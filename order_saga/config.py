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

from contracts import REGISTRY
from pulumi_eventcraft.config import load_config
from pulumi_eventcraft.function import LOG_RETENTION_DAYS

NAMESPACE = "order-saga"

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
Currency = Annotated[str, _matching(r"[A-Z]{3}", "a 3-letter ISO 4217 currency code, e.g. USD")]
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
    # EventBridge numeric matching takes numbers up to 5e9: the threshold in cents too.
    high_value_threshold: float = Field(1000.0, alias="highValueThreshold", gt=0, le=50_000_000)
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
