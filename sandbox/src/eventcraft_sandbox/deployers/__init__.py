"""One deployer per resource type, one module per AWS service.

`DEPLOYERS` maps a Pulumi type token to the function that creates that resource in
moto (see `base.py` for the contract). A type that is not here cannot be deployed
into the sandbox: `MotoMocks` fails naming it.
"""

from __future__ import annotations

from eventcraft_sandbox.deployers import (
    cloudwatch,
    dynamodb,
    events,
    iam,
    kinesis,
    kms,
    lambda_,
    pipes,
    s3,
    schemas,
    sfn,
    sns,
    sqs,
)
from eventcraft_sandbox.deployers.base import Deployer

DEPLOYERS: dict[str, Deployer] = {
    **cloudwatch.DEPLOYERS,
    **dynamodb.DEPLOYERS,
    **events.DEPLOYERS,
    **iam.DEPLOYERS,
    **kinesis.DEPLOYERS,
    **kms.DEPLOYERS,
    **lambda_.DEPLOYERS,
    **pipes.DEPLOYERS,
    **s3.DEPLOYERS,
    **schemas.DEPLOYERS,
    **sfn.DEPLOYERS,
    **sns.DEPLOYERS,
    **sqs.DEPLOYERS,
}

__all__ = ["DEPLOYERS", "Deployer"]
