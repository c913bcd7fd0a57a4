"""Test-wide settings. Tests deploy under mocks with `eventcraft_sandbox.mock_deploy.deploy`."""

from __future__ import annotations

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# The shared folder beside the project (conformance data lives there; never copied).
SHARED = ROOT.parent / "shared"

# moto and botocore: never reach AWS, never use a developer's credentials.
os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
os.environ["AWS_ACCESS_KEY_ID"] = "testing"
os.environ["AWS_SECRET_ACCESS_KEY"] = "testing"
os.environ["AWS_ACCOUNT_ID_ENDPOINT_MODE"] = "disabled"
