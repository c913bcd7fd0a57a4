"""The stack config is validated before any resource exists, with messages that name
the key, the value and what is allowed."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from eventcraft_sandbox.mock_deploy import run_program_file
from eventcraft_sandbox.stack_files import stack_config
from order_saga.config import NAMESPACE, OrderSagaConfig
from pulumi_eventcraft.config import ConfigError, parse_config

ROOT = Path(__file__).resolve().parent.parent
PROGRAM = ROOT / "__main__.py"


def parse(**values: str) -> OrderSagaConfig:
    return parse_config(OrderSagaConfig, values, NAMESPACE)


def test_defaults_when_nothing_is_set() -> None:
    config = parse()
    assert config.saga_mode == "both"
    assert config.high_value_threshold == 1000.0
    assert config.archive_retention_days == 30
    assert config.log_retention_days == 14
    assert config.deletion_protection is False
    assert config.partner_account_ids == []


def test_values_arrive_as_strings_and_json_like_from_the_cli() -> None:
    config = parse(
        sagaMode="orchestration",
        highValueThreshold="2500.5",
        deletionProtection="true",
        partnerAccountIds='["111122223333", "444455556666"]',
        partnerSources='["partner.shipping"]',
        partnerDetailTypes='["ParcelDelivered"]',
        reservedConcurrency="20",
    )
    assert config.saga_mode == "orchestration"
    assert config.high_value_threshold == 2500.5
    assert config.deletion_protection is True
    assert config.partner_account_ids == ["111122223333", "444455556666"]
    assert config.reserved_concurrency == 20


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        (
            "sagaMode",
            "chaos",
            "order-saga:sagaMode = 'chaos': must be one of 'choreography', "
            "'orchestration' or 'both'",
        ),
        (
            "archiveRetentionDays",
            "-3",
            "order-saga:archiveRetentionDays = '-3': must be a number greater than or equal to 1",
        ),
        (
            "highValueThreshold",
            "lots",
            "order-saga:highValueThreshold = 'lots': must be a valid number",
        ),
        (
            "partnerAccountIds",
            '["12345"]',
            "order-saga:partnerAccountIds.0 = '12345': must be a 12-digit AWS account id",
        ),
        (
            "logRetentionDays",
            "10",
            "order-saga:logRetentionDays = '10': must be one of the CloudWatch Logs retention "
            "periods: 1, 3, 5, 7, 14, 30",
        ),
        (
            "forwardToBusArn",
            "my-bus",
            "order-saga:forwardToBusArn = 'my-bus': must be an event bus ARN like",
        ),
        # A threshold must be a whole number of cents: 0.001 would round to 0 and flag
        # every order for review.
        (
            "highValueThreshold",
            "0.001",
            "order-saga:highValueThreshold = '0.001': must be a whole number of cents",
        ),
        # An order totals at most contracts.MAX_CENTS (what EventBridge's numeric
        # matching compares): a threshold at it would never flag an order (#11 point 6).
        (
            "highValueThreshold",
            "50000000",
            "order-saga:highValueThreshold = '50000000': must be below 50000000: an order "
            "totals at most 5000000000 cents",
        ),
        (
            "defaultCurrency",
            "ZZZ",
            "order-saga:defaultCurrency = 'ZZZ': must be an ISO 4217 currency code an order "
            "can be paid in",
        ),
        (
            "partnerAccountIds",
            '["111122223333", "111122223333"]',
            "order-saga:partnerAccountIds = ['111122223333', '111122223333']: lists account "
            "111122223333 twice",
        ),
        (
            "awsEndpoint",
            "http://localhost:99999",
            "order-saga:awsEndpoint = 'http://localhost:99999': must be an http(s) URL",
        ),
        (
            "accountConcurrencyLimit",
            "0",
            "order-saga:accountConcurrencyLimit = '0': must be a number greater than or equal to 1",
        ),
        (
            "sagaMod",
            "both",
            "order-saga:sagaMod = 'both': unknown key; allowed keys: accountConcurrencyLimit,",
        ),
    ],
)
def test_a_bad_value_names_the_key_the_value_and_what_is_allowed(
    key: str, value: str, message: str
) -> None:
    with pytest.raises(ConfigError) as raised:
        parse(**{key: value})
    assert message in str(raised.value)


@pytest.mark.parametrize(
    ("values", "messages"),
    [
        # Partners without what they may put: the bus would let them put this system's
        # own events (a forged PaymentProcessed ships goods).
        (
            {"partnerAccountIds": '["111122223333"]'},
            [
                "order-saga:partnerSources = []: is empty, but partnerAccountIds / "
                "partnerOrganizationId let other accounts put events on the order bus: list "
                'each source they may put (their own, e.g. ["partner.shipping"])',
                "order-saga:partnerDetailTypes = []: is empty, but",
            ],
        ),
        (
            {
                "partnerOrganizationId": "o-abcd123456",
                "partnerSources": '["order-saga.payments"]',
                "partnerDetailTypes": '["PaymentProcessed"]',
            },
            [
                "order-saga:partnerSources = ['order-saga.payments']: 'order-saga.payments' is "
                "a source of this system (order-saga.*) or of AWS (aws.*): a partner putting it "
                "could drive the saga; give the partner's own source",
                "order-saga:partnerDetailTypes = ['PaymentProcessed']: 'PaymentProcessed' is an "
                "event of this system's contracts",
            ],
        ),
        (
            {"partnerSources": '["partner.shipping"]'},
            [
                "order-saga:partnerSources = ['partner.shipping']: restricts what partners may "
                "put, but neither partnerAccountIds nor partnerOrganizationId is set"
            ],
        ),
        (
            {
                "partnerAccountIds": '["111122223333"]',
                "partnerSources": '["partner.*", "aws.s3"]',
                "partnerDetailTypes": '["ParcelLost", "ParcelLost"]',
            },
            [
                "'partner.*' must be a source of 1..256 characters, no wildcards",
                "order-saga:partnerDetailTypes = ['ParcelLost', 'ParcelLost']: lists a "
                "detail-type twice",
            ],
        ),
    ],
)
def test_partners_may_put_only_their_own_listed_events(
    values: dict[str, str], messages: list[str]
) -> None:
    with pytest.raises(ConfigError) as raised:
        parse(**values)
    for message in messages:
        assert message in str(raised.value)


def test_every_problem_is_reported_in_one_message() -> None:
    with pytest.raises(ConfigError) as raised:
        parse(sagaMode="x", snapshotEvery="0", alertEmail="nobody")
    text = str(raised.value)
    assert text.startswith("Invalid stack config:")
    assert "order-saga:sagaMode = 'x'" in text
    assert "order-saga:snapshotEvery = '0'" in text
    assert "order-saga:alertEmail = 'nobody': must be an email address" in text


def test_the_program_stops_before_declaring_anything_on_bad_config() -> None:
    config = {**stack_config("dev", ROOT), "order-saga:sagaMode": "chaos"}
    with pytest.raises(ConfigError, match=r"order-saga:sagaMode = 'chaos'"):
        run_program_file(PROGRAM, stack="dev", config=config)


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_the_committed_stack_files_are_valid(stack: str) -> None:
    values = {
        k.split(":", 1)[1]: v
        for k, v in stack_config(stack, ROOT).items()
        if k.startswith("order-saga:")
    }
    parse(**values)  # raises on any bad key


def test_prod_is_stricter_than_dev() -> None:
    def load(stack: str) -> OrderSagaConfig:
        values = {
            k.split(":", 1)[1]: v
            for k, v in stack_config(stack, ROOT).items()
            if k.startswith("order-saga:")
        }
        return parse(**values)

    dev, prod = load("dev"), load("prod")
    assert prod.deletion_protection and not dev.deletion_protection
    assert prod.archive_retention_days > dev.archive_retention_days
    assert prod.log_retention_days > dev.log_retention_days
    assert prod.alert_email and not dev.alert_email
    assert prod.reserved_concurrency is not None


def prod_with(**values: str) -> dict[str, str]:
    return {**stack_config("prod", ROOT), **{f"{NAMESPACE}:{k}": v for k, v in values.items()}}


def test_reserved_concurrency_must_fit_the_accounts_quota() -> None:
    """prod reserves 20 on each of its 20 functions: 400 of an account's concurrency,
    which Lambda refuses on an account whose quota leaves less than that beside the 100
    it keeps unreserved (new accounts start far below the default 1000)."""
    with pytest.raises(ConfigError) as raised:
        run_program_file(PROGRAM, stack="prod", config=prod_with(accountConcurrencyLimit="499"))
    assert str(raised.value) == (
        "Invalid stack config:\n"
        "  order-saga:reservedConcurrency = 20: 20 functions reserve 20 each, 400 in all, but "
        "order-saga:accountConcurrencyLimit = 499 leaves 399 to reserve (Lambda keeps 100 of "
        "the account's concurrency unreserved): reserve at most 19 per function, or raise "
        "the account's Lambda concurrency quota (Service Quotas) and accountConcurrencyLimit"
    )


def test_a_quota_that_holds_every_reservation_deploys() -> None:
    deployment = run_program_file(
        PROGRAM, stack="prod", config=prod_with(accountConcurrencyLimit="500")
    )
    reserved = [
        r.inputs["reservedConcurrentExecutions"]
        for r in deployment.of_type("aws:lambda/function:Function")
        if r.inputs.get("reservedConcurrentExecutions") is not None
    ]
    # The check counts exactly the functions that reserve (20 x 20 = 500 - 100).
    assert reserved == [20] * 20
    # Without reservations any quota will do.
    run_program_file(
        PROGRAM,
        stack="dev",
        config={**stack_config("dev", ROOT), f"{NAMESPACE}:accountConcurrencyLimit": "10"},
    )


def test_an_express_saga_that_can_outlast_five_minutes_is_refused() -> None:
    """EXPRESS stops an execution after 5 minutes, wherever it is: the saga's worst case
    (every step retried, the last failing, every compensation retried) is longer, so an
    order could be left half-compensated. The error names the key, the state machine,
    its worst case and the limit."""
    config = {**stack_config("dev", ROOT), f"{NAMESPACE}:stateMachineType": "EXPRESS"}
    with pytest.raises(ConfigError) as raised:
        run_program_file(PROGRAM, stack="dev", config=config)
    message = str(raised.value)
    assert message.startswith(
        "Invalid stack config:\n  order-saga:stateMachineType = 'EXPRESS': StateMachine "
        "'saga-orchestrator' is EXPRESS, which stops an execution after 300 s"
    )
    assert re.search(r"but its worst case is \d+ s: reserve \d+ s -> pay \d+ s -> ", message)
    assert message.endswith("or use type 'STANDARD'")
