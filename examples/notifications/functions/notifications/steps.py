"""The welcome saga's tasks; each gets the saga's state (`signupEventId`, `userId`,
`email`, `day`, and `results`, `error`, `compensations` as the saga adds them).

- reserve_quota: dynamodb:UpdateItem, GetItem on QUOTA_TABLE (DAILY_QUOTA units a day).
- release_quota (undoes reserve_quota): dynamodb:UpdateItem on QUOTA_TABLE.
- send_email: no AWS call (the simulated provider refuses REJECTED_DOMAINS).
- record_outcome (the saga's success and failure hook): dynamodb:PutItem on
  WELCOMES_TABLE, events:PutEvents on EVENT_BUS_NAME.
"""

from __future__ import annotations

import json
import os
import uuid
from typing import Any

from eventcraft import clients
from eventcraft.publisher import Publisher
from eventcraft.settings import env
from notifications import provider
from notifications.contracts import WelcomeFailed, WelcomeSent
from notifications.quota import QuotaStore

State = dict[str, Any]


def reserve_quota(state: State, context: object) -> dict[str, int]:
    used = QuotaStore(env("QUOTA_TABLE")).reserve(
        state["day"], state["signupEventId"], limit=int(env("DAILY_QUOTA"))
    )
    return {"used": used}


def release_quota(state: State, context: object) -> dict[str, bool]:
    return {
        "released": QuotaStore(env("QUOTA_TABLE")).release(state["day"], state["signupEventId"])
    }


def send_email(state: State, context: object) -> dict[str, str]:
    refused = {d for d in os.environ.get("REJECTED_DOMAINS", "").split(",") if d}
    message_id = provider.send(
        state["email"], refused_domains=refused, idempotency_key=state["signupEventId"]
    )
    return {"messageId": message_id}


def record_outcome(state: State, context: object) -> dict[str, str]:
    """Store the user's welcome and publish its event; a retry writes and publishes the
    same (the event id derives from the signup's), so consumers see one fact."""
    common = {
        "user_id": state["userId"],
        "email": state["email"],
        "signup_event_id": state["signupEventId"],
        "event_id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"welcome/{state['signupEventId']}")),
    }
    event: WelcomeSent | WelcomeFailed
    if "error" in state:
        event = WelcomeFailed(reason=_reason(state["error"]), **common)
        outcome = {"status": {"S": "FAILED"}, "reason": {"S": event.reason}}
    else:
        event = WelcomeSent(message_id=state["results"]["sendEmail"]["messageId"], **common)
        outcome = {"status": {"S": "SENT"}, "messageId": {"S": event.message_id}}
    clients.client("dynamodb").put_item(
        TableName=env("WELCOMES_TABLE"),
        Item={
            "userId": {"S": event.user_id},
            "email": {"S": event.email},
            "signupEventId": {"S": event.signup_event_id},
            **outcome,
        },
    )
    Publisher(client=clients.client("events")).publish([event])
    return {"status": outcome["status"]["S"]}


def _reason(error: dict[str, Any]) -> str:
    """The reason of a failed saga, `<error>: <message>`, from its `$.error` (a Lambda
    error's Cause is the JSON of the handler's errorMessage and errorType)."""
    cause = error.get("Cause", "")
    try:
        parsed = json.loads(cause)
    except ValueError:
        parsed = None
    message = parsed.get("errorMessage", cause) if isinstance(parsed, dict) else cause
    return f"{error.get('Error', 'Error')}: {message}"
