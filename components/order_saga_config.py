"""The order-saga stack's configuration (the `order-saga:` keys of Pulumi.<stack>.yaml).

Every key, its default and what is allowed is listed in README.md; this model is
the single source of both the validation and those defaults.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from components.config import load_config

NAMESPACE = "order-saga"

# CloudWatch Logs accepts only these retention periods (days).
LOG_RETENTION_DAYS = (
    1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731,
    1096, 1827, 2192, 2557, 2922, 3288, 3653,
)  # fmt: skip


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


def _log_retention(days: int) -> int:
    if days not in LOG_RETENTION_DAYS:
        allowed = ", ".join(map(str, LOG_RETENTION_DAYS))
        raise ValueError(f"must be one of the CloudWatch Logs retention periods: {allowed}")
    return days


class OrderSagaConfig(BaseModel):
    """Typed stack config. Field aliases are the keys as written in the stack file."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    saga_mode: Literal["choreography", "orchestration", "both"] = Field("both", alias="sagaMode")
    high_value_threshold: float = Field(1000.0, alias="highValueThreshold", gt=0)
    default_currency: Currency = Field("USD", alias="defaultCurrency")
    archive_retention_days: int = Field(30, alias="archiveRetentionDays", ge=1, le=3650)
    log_retention_days: Annotated[int, AfterValidator(_log_retention)] = Field(
        14, alias="logRetentionDays"
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field("INFO", alias="logLevel")
    lambda_architecture: Literal["arm64", "x86_64"] = Field("arm64", alias="lambdaArchitecture")
    reserved_concurrency: int | None = Field(None, alias="reservedConcurrency", ge=1)
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


def load() -> OrderSagaConfig:
    """Read `order-saga:*` of the current stack; raises ConfigError on any bad key."""
    return load_config(OrderSagaConfig, NAMESPACE)
