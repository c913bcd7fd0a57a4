"""IAM managed policies and attachments, KMS aliases, and rule targets with constant
input and FIFO message groups, deployed into the sandbox."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pulumi
import pulumi_aws as aws
import pytest

from eventcraft_sandbox.moto_deploy import DeployError, Sandbox

TRUST_LAMBDA = json.dumps(
    {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Service": "lambda.amazonaws.com"},
                "Action": "sts:AssumeRole",
            }
        ],
    }
)


@pytest.fixture
def sandbox() -> Iterator[Sandbox]:
    with Sandbox() as running:
        yield running


def test_a_managed_policy_attached_to_a_role(sandbox: Sandbox) -> None:
    def program() -> None:
        role = aws.iam.Role("reader", assume_role_policy=TRUST_LAMBDA, path="/service/")
        policy = aws.iam.Policy(
            "read-orders",
            description="Read the orders table",
            policy=json.dumps(
                {
                    "Version": "2012-10-17",
                    "Statement": [
                        {
                            "Effect": "Allow",
                            "Action": "dynamodb:GetItem",
                            "Resource": "arn:aws:dynamodb:us-east-1:123456789012:table/orders",
                        }
                    ],
                }
            ),
        )
        aws.iam.RolePolicyAttachment("attach", role=role.name, policy_arn=policy.arn)
        pulumi.export("policyArn", policy.arn)
        pulumi.export("roleArn", role.arn)

    deployment = sandbox.deploy(program)
    iam = sandbox.client("iam")
    attached = iam.list_attached_role_policies(RoleName="reader")["AttachedPolicies"]
    assert attached == [{"PolicyName": "read-orders", "PolicyArn": deployment.outputs["policyArn"]}]
    assert deployment.outputs["roleArn"] == f"arn:aws:iam::{sandbox.account}:role/service/reader"
    assert deployment.named("reader").outputs["uniqueId"].startswith("AROA")


def test_an_invalid_policy_document_is_refused_by_moto(sandbox: Sandbox) -> None:
    def program() -> None:
        role = aws.iam.Role("reader", assume_role_policy=TRUST_LAMBDA)
        aws.iam.RolePolicy(
            "broken",
            role=role.id,
            policy=json.dumps({"Version": "2012-10-17", "Statement": [{"Effect": "Maybe"}]}),
        )

    with pytest.raises(DeployError, match=r"(?s)'broken'.*MalformedPolicyDocument"):
        sandbox.deploy(program)


def test_a_key_alias_points_at_its_key(sandbox: Sandbox) -> None:
    def program() -> None:
        key = aws.kms.Key("orders", description="orders data")
        alias = aws.kms.Alias("orders-alias", name="alias/orders", target_key_id=key.key_id)
        pulumi.export("keyArn", key.arn)
        pulumi.export("aliasArn", alias.arn)

    deployment = sandbox.deploy(program)
    aliases = sandbox.client("kms").list_aliases()["Aliases"]
    [alias] = [a for a in aliases if a["AliasName"] == "alias/orders"]
    assert alias["TargetKeyId"] == deployment.resource_id("orders")
    assert deployment.outputs["aliasArn"] == f"arn:aws:kms:us-east-1:{sandbox.account}:alias/orders"
    assert deployment.named("orders-alias").outputs["targetKeyArn"] == deployment.outputs["keyArn"]


def test_a_target_with_constant_input_on_a_fifo_queue(sandbox: Sandbox) -> None:
    def program() -> None:
        queue = aws.sqs.Queue("ordered", name="ordered.fifo", fifo_queue=True)
        dlq = aws.sqs.Queue("ordered-dlq")
        rule = aws.cloudwatch.EventRule(
            "tick", schedule_expression="rate(5 minutes)", description="heartbeat"
        )
        aws.cloudwatch.EventTarget(
            "tick-target",
            rule=rule.name,
            arn=queue.arn,
            input=json.dumps({"kind": "heartbeat"}),
            sqs_target={"message_group_id": "heartbeats"},
            dead_letter_config={"arn": dlq.arn},
        )

    deployment = sandbox.deploy(program)
    [target] = sandbox.client("events").list_targets_by_rule(Rule="tick")["Targets"]
    # No target_id given: an id is generated from the logical name, as the provider would.
    assert target["Id"] == "tick-target"
    assert json.loads(target["Input"]) == {"kind": "heartbeat"}
    assert target["SqsParameters"] == {"MessageGroupId": "heartbeats"}
    assert target["DeadLetterConfig"] == {"Arn": deployment.arn("ordered-dlq")}
    assert deployment.resource_id("tick-target") == "tick-tick-target"
