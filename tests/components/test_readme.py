"""The component package's README example is a real program: it runs under the mocks
and declares what the README says."""

from __future__ import annotations

import re
from pathlib import Path

from eventcraft_sandbox.mock_deploy import deploy

README = Path(__file__).resolve().parents[2] / "components" / "README.md"


def test_the_readme_example_declares_a_routed_queue_with_dlqs() -> None:
    (code,) = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    d = deploy(lambda: exec(code, {}))
    [target] = d.of_type("aws:cloudwatch/eventTarget:EventTarget")
    assert target.inputs["arn"] == d.named("emails-queue").outputs["arn"]
    assert "deadLetterConfig" in target.inputs and "retryPolicy" in target.inputs
    assert d.named("emails-queue").inputs["redrivePolicy"]
    assert d.named("notifications-bus").inputs["tags"] == {"team": "growth"}
