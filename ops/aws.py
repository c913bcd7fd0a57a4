"""The boto3 clients ops uses, created once per run from one session."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError, NoRegionError

from ops.errors import OpsError, UsageError

if TYPE_CHECKING:
    from mypy_boto3_cloudwatch.client import CloudWatchClient
    from mypy_boto3_dynamodb.client import DynamoDBClient
    from mypy_boto3_events.client import EventBridgeClient
    from mypy_boto3_lambda.client import LambdaClient
    from mypy_boto3_sqs.client import SQSClient
    from mypy_boto3_stepfunctions.client import SFNClient

# Standard retries (throttling, transient errors, with backoff). The account-based
# endpoint mode is off: emulators (moto, the sandbox) do not route those endpoints.
_CONFIG = Config(retries={"mode": "standard"}, account_id_endpoint_mode="disabled")


class Clients:
    """One client per service, created on first use.

    region, profile: default the environment's (AWS_REGION / AWS_PROFILE ...).
    endpoint_url: an emulator's endpoint (e.g. http://localhost:4566); default AWS.
    session: a boto3 session to use instead (tests).
    """

    def __init__(
        self,
        *,
        region: str | None = None,
        profile: str | None = None,
        endpoint_url: str | None = None,
        session: boto3.session.Session | None = None,
    ) -> None:
        self._session = session
        self._region = region
        self._profile = profile
        self.endpoint_url = endpoint_url
        self._clients: dict[str, Any] = {}

    @property
    def session(self) -> boto3.session.Session:
        if self._session is None:
            try:
                self._session = boto3.session.Session(
                    profile_name=self._profile, region_name=self._region
                )
            except BotoCoreError as exc:
                raise UsageError(f"cannot create an AWS session: {exc}") from exc
        return self._session

    def client(self, service: str) -> Any:
        existing = self._clients.get(service)
        if existing is None:
            kwargs: dict[str, Any] = {"config": _CONFIG}
            if self.endpoint_url:
                kwargs["endpoint_url"] = self.endpoint_url
            try:
                existing = self.session.client(service, **kwargs)  # type: ignore[call-overload]
            except NoRegionError as exc:
                raise UsageError(
                    "no AWS region: pass --region or set AWS_REGION (the stack's region)"
                ) from exc
            self._clients[service] = existing
        return existing

    @property
    def sqs(self) -> SQSClient:
        client: SQSClient = self.client("sqs")
        return client

    @property
    def events(self) -> EventBridgeClient:
        client: EventBridgeClient = self.client("events")
        return client

    @property
    def dynamodb(self) -> DynamoDBClient:
        client: DynamoDBClient = self.client("dynamodb")
        return client

    @property
    def sfn(self) -> SFNClient:
        client: SFNClient = self.client("stepfunctions")
        return client

    @property
    def lambda_(self) -> LambdaClient:
        client: LambdaClient = self.client("lambda")
        return client

    @property
    def cloudwatch(self) -> CloudWatchClient:
        client: CloudWatchClient = self.client("cloudwatch")
        return client


def error_code(exc: BaseException) -> str:
    """The AWS error code of a ClientError, else the exception's type name."""
    if isinstance(exc, ClientError):
        return str(exc.response.get("Error", {}).get("Code") or type(exc).__name__)
    return type(exc).__name__


def describe_aws_error(exc: BaseException, doing: str) -> OpsError:
    """An OpsError for a failed AWS call (credentials problems are usage errors)."""
    if isinstance(exc, NoCredentialsError):
        return UsageError(
            f"{doing}: no AWS credentials (set AWS_PROFILE or pass --profile, or the "
            "AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY pair)"
        )
    if isinstance(exc, ClientError):
        message = exc.response.get("Error", {}).get("Message") or str(exc)
        return OpsError(f"{doing}: {error_code(exc)}: {message}")
    return OpsError(f"{doing}: {exc}")
