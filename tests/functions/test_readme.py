"""The handler library's README example is real: it publishes a contract event that the
envelopes parse back."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import boto3
from moto import mock_aws

from eventcraft import contracts, envelopes

README = Path(__file__).resolve().parents[2] / "eventcraft" / "README.md"


def test_the_readme_example_publishes_an_event_the_envelopes_read_back(
    monkeypatch: Any,
) -> None:
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    (code,) = (block for block in blocks if "Publisher(" in block)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    # The example installs its registry as the default: undone after the test.
    monkeypatch.setattr(contracts, "_default_registry", contracts._default_registry)
    namespace: dict[str, Any] = {"__name__": "readme"}
    with mock_aws():
        boto3.client("events").create_event_bus(Name="notifications")
        exec(code, namespace)
    assert len(namespace["ids"]) == 1
    event = namespace["UserSignedUp"](user_id="u-2")
    parsed = envelopes.from_eventbridge(
        {"detail-type": "UserSignedUp", "detail": event.to_detail()}
    )
    assert parsed == event
    assert type(parsed).__name__ == "UserSignedUp"
