"""Entry: batches of UserSignedUp events from the welcome queue -> one welcome saga each.

AWS calls: states:StartExecution on WELCOME_SAGA_ARN; dynamodb:GetItem, PutItem,
UpdateItem and DeleteItem on IDEMPOTENCY_TABLE (eventcraft.idempotency, keyed on the
event's eventId: a duplicate delivery starts nothing).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
from typing import TYPE_CHECKING, Any

from eventcraft import batch, clients, envelopes, idempotency
from eventcraft.settings import env
from notifications.contracts import REGISTRY, UserSignedUp

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
    from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
    from aws_lambda_powertools.utilities.typing import LambdaContext

CONFIG = idempotency.config(idempotency.CONTRACT_EVENT_ID)
_EXECUTION_NAME = re.compile(r"[A-Za-z0-9_-]{1,80}")


def handler(event: dict[str, Any], context: LambdaContext) -> PartialItemFailureResponse:
    return batch.process_batch(event, context, welcome, idempotency_config=CONFIG)


def welcome(record: SQSRecord) -> None:
    start_saga(event=envelopes.from_sqs(record, model=UserSignedUp, registry=REGISTRY))


@idempotency.idempotent_function(
    data_keyword_argument="event",
    config=CONFIG,
    persistence_store=idempotency.persistence(boto3_client=clients.client("dynamodb")),
)
def start_saga(event: UserSignedUp) -> dict[str, str]:
    """Start the welcome saga of one signup, named after its event id."""
    sfn = clients.client("stepfunctions")
    name = event.event_id
    if not _EXECUTION_NAME.fullmatch(name):
        name = hashlib.sha256(name.encode()).hexdigest()
    saga_input = {
        "signupEventId": event.event_id,
        "userId": event.user_id,
        "email": event.email,
        "day": event.occurred_at.date().isoformat(),
    }
    # Already there when an earlier attempt started it, then failed before its
    # idempotency record completed.
    with contextlib.suppress(sfn.exceptions.ExecutionAlreadyExists):
        sfn.start_execution(
            stateMachineArn=env("WELCOME_SAGA_ARN"), name=name, input=json.dumps(saga_input)
        )
    return {"execution": name}
