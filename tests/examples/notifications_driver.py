"""Run the notifications example in a fresh environment; `test_notifications` runs this
file with that environment's python (never imported by the suite).

    python -I notifications_driver.py mocks|sandbox EXAMPLE_DIR OUTPUT_JSON

`mocks`: the program under Pulumi mocks (`mock_deploy.run_program_file`): every resource
with its inputs, the stack outputs and the layer zip's file names. `sandbox`: the
program deployed into the sandbox (`SandboxSession`), two signups put on its bus (one
welcomed, one refused by the provider) and, once they are done, the first one again (a
duplicate delivery): the tables, the events on the bus, the saga executions, the
invocations and the queues. Both also write where
`pulumi_eventcraft`, `eventcraft` and `eventcraft_sandbox` were imported from.
"""

from __future__ import annotations

import json
import os
import site
import sys
import zipfile
from pathlib import Path
from typing import Any

# The fresh environment borrows its third-party packages (pulumi, moto, pydantic, ...)
# through a path in a .pth file. The sandbox's Lambda runtime lets handlers import from
# the interpreter's own site-packages only (what a dependency layer provides): the
# borrowed directories are declared site-packages of this interpreter, before the
# sandbox is imported.
for borrowed in filter(None, os.environ.get("BORROWED_SITE_PACKAGES", "").split(os.pathsep)):
    site.PREFIXES.append(str(Path(borrowed).parents[2]))  # <prefix>/lib/pythonX.Y/site-packages

import pulumi  # noqa: E402

import eventcraft  # noqa: E402
import eventcraft_sandbox  # noqa: E402
import pulumi_eventcraft  # noqa: E402

SIGNUPS = "accounts.users"


def origins() -> dict[str, str]:
    return {
        m.__name__: str(m.__file__) for m in (pulumi_eventcraft, eventcraft, eventcraft_sandbox)
    }


def mocks(example: Path) -> dict[str, Any]:
    from eventcraft_sandbox.mock_deploy import run_program_file
    from eventcraft_sandbox.stack_files import stack_config

    deployment = run_program_file(
        example / "__main__.py", stack="dev", config=stack_config("dev", example)
    )
    return {
        "resources": [
            {"type": r.typ, "name": r.name, "parent": r.parent, "inputs": r.inputs}
            for r in deployment.resources
        ],
        "outputs": deployment.outputs,
    }


def plain(value: Any) -> Any:
    """Code assets as what they hold: a zip's file names, a folder's files."""
    if isinstance(value, pulumi.FileArchive):
        return {"zip": value.path, "files": zipfile.ZipFile(value.path).namelist()}
    if isinstance(value, pulumi.AssetArchive):
        return {"files": sorted(value.assets)}
    return str(value)


def signup(event_id: str, user_id: str, email: str) -> dict[str, str]:
    return {
        "eventId": event_id,
        "occurredAt": "2026-03-01T09:30:00Z",
        "version": "1",
        "userId": user_id,
        "email": email,
    }


def sandbox(example: Path) -> dict[str, Any]:
    from eventcraft_sandbox.session import SandboxSession

    events: list[dict[str, Any]] = []

    def observed(event: Any) -> None:
        events.append({k: event.get(k) for k in ("source", "detail-type", "detail")})

    with SandboxSession(example / "__main__.py", "dev", on_event=observed) as session:
        ada = signup("signup-ada", "user-ada", "ada@example.com")
        session.put_event("UserSignedUp", ada, source=SIGNUPS)
        session.put_event(
            "UserSignedUp", signup("signup-bob", "user-bob", "bob@bounce.example"), source=SIGNUPS
        )
        session.run_until_quiet()
        session.put_event("UserSignedUp", ada, source=SIGNUPS)  # at least once: ada again
        session.run_until_quiet()
        sfn = session.client("stepfunctions")
        executions = sfn.list_executions(stateMachineArn=session.outputs["stateMachineArn"])
        return {
            "welcomes": session.scan("welcomes"),
            "quota": session.scan("quota"),
            "idempotency": session.scan("idempotency"),
            "events": events,
            "executions": sorted(
                (
                    e["name"],
                    e["status"],
                    sfn.describe_execution(executionArn=e["executionArn"]).get("error"),
                )
                for e in executions["executions"]
            ),
            "invocations": session.invocations,
            "errors": session.invocation_errors,
            "queues": {q: session.queue_depth(q) for q in ("welcome", "welcome-dlq")},
        }


def main() -> None:
    mode, example, output = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3])
    result = {"mocks": mocks, "sandbox": sandbox}[mode](example)
    output.write_text(json.dumps({**result, "origins": origins()}, default=plain))


if __name__ == "__main__":
    main()
