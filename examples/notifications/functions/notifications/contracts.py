"""The events of this program: the one it consumes and the two it publishes."""

from __future__ import annotations

from typing import Final, Literal

from eventcraft.contracts import Event, Registry

# Published by the welcome saga's outcome hook.
SOURCE: Final = "notifications.welcome"


class UserSignedUp(Event):
    """A user created an account (published by the accounts service)."""

    DETAIL_TYPE = "UserSignedUp"
    SOURCE = "accounts.users"
    version: Literal["1"] = "1"
    user_id: str
    email: str


class WelcomeSent(Event):
    """The welcome email of a new user was accepted by the email provider."""

    DETAIL_TYPE = "WelcomeSent"
    SOURCE = SOURCE
    version: Literal["1"] = "1"
    user_id: str
    email: str
    message_id: str
    signup_event_id: str


class WelcomeFailed(Event):
    """A new user was not welcomed (quota used up, or the provider refused the address);
    the quota reserved for the email, if any, was released."""

    DETAIL_TYPE = "WelcomeFailed"
    SOURCE = SOURCE
    version: Literal["1"] = "1"
    user_id: str
    email: str
    reason: str
    signup_event_id: str


REGISTRY: Final = Registry(
    [UserSignedUp, WelcomeSent, WelcomeFailed], name="notifications.contracts"
)
