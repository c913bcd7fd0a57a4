"""The S3 "Object Created" event that starts a bulk import (S3 -> EventBridge).

AWS owns this contract (source "aws.s3"), so it is not in our registry or schema registry;
parse it explicitly: `envelopes.from_eventbridge(event, model=S3ObjectCreated)`.
"""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field


class _AwsModel(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore", validate_by_name=True, defer_build=True)


class S3Bucket(_AwsModel):
    name: str


class S3Object(_AwsModel):
    key: str
    size: int = Field(ge=0)
    etag: str | None = None
    sequencer: str | None = None
    version_id: str | None = Field(default=None, alias="version-id")


class S3ObjectCreated(_AwsModel):
    DETAIL_TYPE: ClassVar[str] = "Object Created"
    SOURCE: ClassVar[str] = "aws.s3"

    version: Literal["0"] = "0"
    bucket: S3Bucket
    object: S3Object
    request_id: str | None = Field(default=None, alias="request-id")
    requester: str | None = None
    reason: str | None = None
