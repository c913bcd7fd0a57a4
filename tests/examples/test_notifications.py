"""The notifications example (examples/notifications) as a new user of the packages gets it.

The three distributions are built as wheels and installed into a fresh virtual
environment that sees nothing of this checkout; the example is evaluated there, from a
working directory outside the repository, under Pulumi mocks and in the sandbox
(`notifications_driver.py`, run by the fresh environment's python).

Nothing is downloaded for the environment: its third-party packages (pulumi, moto,
pydantic, pip itself, ...) are borrowed from the running interpreter's site-packages
through a path in a .pth file. A plain path does not run the .pth files found there, so
the project's editable installs stay invisible: only the wheels installed here are.
The layer build resolves `eventcraft` from the example's functions/requirements.txt:
PIP_FIND_LINKS points pip at the wheel built here (the rest comes from pip's index).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "notifications"
DRIVER = Path(__file__).with_name("notifications_driver.py")
# Each distribution (its import name, also its wheel's name) -> its folder here.
DISTRIBUTIONS = {
    "pulumi_eventcraft": "components",
    "eventcraft": "eventcraft",
    "eventcraft_sandbox": "sandbox",
}
FUNCTIONS = ("welcome", "reserve-quota", "send-email", "release-quota", "record-outcome")
REFUSED = "EmailRejected: bob@bounce.example: the provider refuses addresses at bounce.example"


def run(*command: Any, check: bool = True, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [str(c) for c in command], capture_output=True, text=True, check=False, **kwargs
    )
    if check and result.returncode != 0:
        pytest.fail(f"{' '.join(map(str, command))} failed:\n{result.stdout}\n{result.stderr}")
    return result


@dataclass(frozen=True)
class FreshEnvironment:
    python: Path
    site_packages: Path
    wheels: tuple[str, ...]
    pip_check: str
    mocks: dict[str, Any]  # the driver's output per mode
    sandbox: dict[str, Any]


@pytest.fixture(scope="module")
def fresh(tmp_path_factory: pytest.TempPathFactory) -> FreshEnvironment:
    root = tmp_path_factory.mktemp("fresh")
    wheel_dir = root / "wheels"
    folders = [REPO / folder for folder in DISTRIBUTIONS.values()]
    run(sys.executable, "-m", "pip", "wheel", "--no-deps", "-w", wheel_dir, *folders)
    # Without pip: pip is borrowed like the other third-party packages.
    run(sys.executable, "-m", "venv", "--without-pip", root / "venv")
    python = root / "venv" / "bin" / "python"
    purelib = "import sysconfig; print(sysconfig.get_paths()['purelib'])"
    site_packages = Path(run(python, "-I", "-c", purelib).stdout.strip())
    borrowed = list(dict.fromkeys(sysconfig.get_paths()[k] for k in ("purelib", "platlib")))
    (site_packages / "borrowed_third_party.pth").write_text("".join(f"{p}\n" for p in borrowed))
    wheels = sorted(wheel_dir.glob("*.whl"))
    run(python, "-m", "pip", "install", "--no-deps", "--no-index", *wheels)
    pip_check = run(python, "-m", "pip", "check").stdout

    work = root / "work"  # the working directory: outside the repository
    work.mkdir()
    links = os.environ.get("PIP_FIND_LINKS", "")
    env = {
        **os.environ,
        "PIP_FIND_LINKS": f"{wheel_dir} {links}".strip(),
        "BORROWED_SITE_PACKAGES": os.pathsep.join(borrowed),
    }
    results = {}
    for mode in ("mocks", "sandbox"):
        output = root / f"{mode}.json"
        run(python, "-I", DRIVER, mode, EXAMPLE, output, cwd=work, env=env)
        results[mode] = json.loads(output.read_text())
    return FreshEnvironment(
        python=python,
        site_packages=site_packages,
        wheels=tuple(w.name for w in wheels),
        pip_check=pip_check,
        mocks=results["mocks"],
        sandbox=results["sandbox"],
    )


# ------------------------------------------------------------------ the environment


def test_the_wheels_install_into_a_fresh_environment(fresh: FreshEnvironment) -> None:
    # One pure-Python wheel per distribution.
    assert sorted(w.split("-")[0] for w in fresh.wheels) == sorted(DISTRIBUTIONS)
    assert all(w.endswith("-py3-none-any.whl") for w in fresh.wheels)
    # Every dependency the wheels declare is satisfied (by the borrowed packages).
    assert fresh.pip_check.strip() == "No broken requirements found."
    # Both runs imported the packages from the fresh environment, not from the checkout.
    for mode in (fresh.mocks, fresh.sandbox):
        assert set(mode["origins"]) == set(DISTRIBUTIONS)
        for module, origin in mode["origins"].items():
            assert Path(origin) == fresh.site_packages / module / "__init__.py"


def test_the_checkout_is_invisible_in_the_fresh_environment(fresh: FreshEnvironment) -> None:
    # The application's packages and handlers are installed editable next to the
    # borrowed packages (`make`); none of them is importable here.
    for module in ("order_saga", "contracts", "handlers"):
        result = run(fresh.python, "-I", "-c", f"import {module}", check=False)
        assert f"No module named '{module}'" in result.stderr


# ------------------------------------------------------------------ under mocks


def resources(fresh: FreshEnvironment, kind: str) -> dict[str, dict[str, Any]]:
    """The inputs of the recorded AWS resources of one type (`aws:<module>/<x>:<Kind>`),
    by name."""
    return {
        r["name"]: r["inputs"]
        for r in fresh.mocks["resources"]
        if r["type"].startswith("aws:") and r["type"].endswith(f":{kind}")
    }


def test_the_program_declares_the_welcome_flow(fresh: FreshEnvironment) -> None:
    components = Counter(
        r["type"] for r in fresh.mocks["resources"] if r["type"].startswith("eventcraft:")
    )
    assert components == {
        "eventcraft:index:EventBus": 1,
        "eventcraft:index:EventRule": 1,
        "eventcraft:index:Queue": 1,
        "eventcraft:index:DeadLetterQueue": 2,  # the queue's and the rule target's
        "eventcraft:index:Table": 3,
        "eventcraft:index:DependencyLayer": 1,
        "eventcraft:index:Function": 5,
        "eventcraft:index:StateMachine": 1,
        "eventcraft:index:EventSourceMapping": 1,
    }
    queues = resources(fresh, "Queue")
    rule = resources(fresh, "EventRule")["signups-rule"]
    assert json.loads(rule["eventPattern"]) == {
        "source": ["accounts.users"],
        "detail-type": ["UserSignedUp"],
    }
    target = resources(fresh, "EventTarget")["signups-sqs"]
    assert target["arn"].endswith(":welcome-queue")
    assert target["deadLetterConfig"]["arn"].endswith(":signups-sqs-dlq-queue")
    assert "signups-sqs-dlq-queue" in queues
    queue = queues["welcome-queue"]
    assert json.loads(queue["redrivePolicy"]) == {
        "deadLetterTargetArn": "arn:aws:sqs:us-east-1:123456789012:welcome-dlq-queue",
        "maxReceiveCount": 5,
    }
    assert queue["visibilityTimeoutSeconds"] == 180  # 6 x the welcome function's 30 s
    assert all(q["sqsManagedSseEnabled"] for q in queues.values())
    mapping = resources(fresh, "EventSourceMapping")["welcome-consumer-mapping"]
    assert mapping["eventSourceArn"].endswith(":welcome-queue")
    assert mapping["functionName"].endswith(":function:notifications-dev-welcome")
    assert mapping["functionResponseTypes"] == ["ReportBatchItemFailures"]

    tables = resources(fresh, "Table")
    assert {name: t["hashKey"] for name, t in tables.items()} == {
        "quota-table": "pk",
        "welcomes-table": "userId",
        "idempotency-table": "id",
    }
    assert tables["idempotency-table"]["ttl"] == {"enabled": True, "attributeName": "expiration"}
    assert all(t["serverSideEncryption"] == {"enabled": True} for t in tables.values())
    assert all(t["pointInTimeRecovery"] == {"enabled": True} for t in tables.values())


def test_every_function_runs_on_the_layer_built_from_the_eventcraft_wheel(
    fresh: FreshEnvironment,
) -> None:
    layer = resources(fresh, "LayerVersion")["deps-layer"]
    files = set(layer["code"]["files"])
    assert "python/eventcraft/publisher.py" in files
    assert "python/eventcraft-0.1.0.dist-info/METADATA" in files
    assert "python/pydantic_core/_pydantic_core.cpython-312-aarch64-linux-gnu.so" in files
    assert layer["compatibleArchitectures"] == ["arm64"]
    functions = resources(fresh, "Function")
    assert sorted(functions) == sorted(f"{name}-function" for name in FUNCTIONS)
    for name, function in functions.items():
        assert function["layers"] == [
            "arn:aws:lambda:us-east-1:123456789012:layer:notifications-dev-deps:1"
        ]
        assert function["runtime"] == "python3.12"
        assert function["architectures"] == ["arm64"]
        assert function["tracingConfig"] == {"mode": "Active"}
        assert function["tags"] == {"app": "notifications", "stack": "dev"}, name
        # The code asset is the example's functions/ folder: the handlers, no library.
        assert "notifications/welcome.py" in function["code"]["files"]
        assert not any(f.startswith("eventcraft/") for f in function["code"]["files"])
    assert fresh.mocks["outputs"]["functions"] == {
        name: f"notifications-dev-{name}" for name in FUNCTIONS
    }


def granted(fresh: FreshEnvironment) -> dict[str, set[tuple[str, str]]]:
    """Role -> (action, resource) of every Allow its inline policies grant; a resource
    by its name (the last part of its ARN; a function's versions as `<name>:*`)."""
    grants: dict[str, set[tuple[str, str]]] = {}
    for policy in resources(fresh, "RolePolicy").values():
        for statement in json.loads(policy["policy"])["Statement"]:
            actions = statement["Action"]
            resources_ = statement["Resource"]
            for action in [actions] if isinstance(actions, str) else actions:
                for arn in [resources_] if isinstance(resources_, str) else resources_:
                    name = arn.split(":function:", 1)[-1].rsplit("/", 1)[-1]
                    name = name if ":function:" in arn else name.rsplit(":", 1)[-1]
                    grants.setdefault(policy["role"], set()).add((action, name))
    return grants


def test_each_role_may_make_exactly_its_handlers_calls(fresh: FreshEnvironment) -> None:
    grants = granted(fresh)
    # Every function may write its own logs and traces; what else each role may do:
    own = {
        role: {g for g in found if not g[0].startswith(("logs:", "xray:"))}
        for role, found in grants.items()
    }
    assert own["reserve-quota-role"] == {
        ("dynamodb:UpdateItem", "quota-table"),
        ("dynamodb:GetItem", "quota-table"),
    }
    assert own["release-quota-role"] == {("dynamodb:UpdateItem", "quota-table")}
    assert own["send-email-role"] == set()
    assert own["record-outcome-role"] == {
        ("dynamodb:PutItem", "welcomes-table"),
        ("events:PutEvents", "events-bus"),
    }
    assert own["welcome-role"] == {
        *(
            (f"dynamodb:{a}", "idempotency-table")
            for a in ("GetItem", "PutItem", "UpdateItem", "DeleteItem")
        ),
        ("states:StartExecution", "notifications-dev-welcome-saga"),
        *(
            (f"sqs:{a}", "welcome-queue")
            for a in (
                "ReceiveMessage",
                "DeleteMessage",
                "ChangeMessageVisibility",
                "GetQueueAttributes",
            )
        ),
    }
    # The saga's role may invoke its four functions (and their versions), nothing else.
    invoked = {name for action, name in grants["welcome-saga-role"] if action.startswith("lambda:")}
    tasks = [f"notifications-dev-{n}" for n in FUNCTIONS if n != "welcome"]
    assert invoked == {*tasks, *(f"{task}:*" for task in tasks)}


def test_the_saga_releases_the_quota_when_the_email_fails(fresh: FreshEnvironment) -> None:
    machine = resources(fresh, "StateMachine")["welcome-saga-sm"]
    states = json.loads(machine["definition"])["States"]
    function = "arn:aws:lambda:us-east-1:123456789012:function:notifications-dev-{}".format
    assert states["reserveQuota"]["Resource"] == function("reserve-quota")
    assert states["reserveQuota"]["Next"] == "sendEmail"
    assert states["sendEmail"]["Resource"] == function("send-email")
    assert states["sendEmail"]["Next"] == "RecordSuccess"
    assert [c["Next"] for c in states["sendEmail"]["Catch"]] == ["CompensateReserveQuota"]
    assert states["CompensateReserveQuota"]["Resource"] == function("release-quota")
    assert states["CompensateReserveQuota"]["Next"] == "RecordFailure"
    assert states["RecordSuccess"]["Resource"] == function("record-outcome")
    assert states["RecordFailure"]["Resource"] == function("record-outcome")


# ------------------------------------------------------------------ in the sandbox


def test_new_users_are_welcomed_once_and_a_refused_email_gives_its_quota_back(
    fresh: FreshEnvironment,
) -> None:
    result = fresh.sandbox
    welcomes = {w["userId"]: w for w in result["welcomes"]}
    assert welcomes["user-ada"]["status"] == "SENT"
    assert welcomes["user-ada"]["messageId"].startswith("msg-")
    assert welcomes["user-bob"]["status"] == "FAILED"
    assert welcomes["user-bob"]["reason"] == REFUSED
    # One unit used (ada's, once despite the duplicate); bob's was released.
    assert result["quota"] == [{"pk": "quota#2026-03-01", "used": 1, "holders": ["signup-ada"]}]

    published = [e for e in result["events"] if e["source"] == "notifications.welcome"]
    assert [(e["detail-type"], e["detail"]["userId"]) for e in published] == [
        ("WelcomeSent", "user-ada"),
        ("WelcomeFailed", "user-bob"),
    ]
    sent, failed = (e["detail"] for e in published)
    assert sent["messageId"] == welcomes["user-ada"]["messageId"]
    assert sent["signupEventId"] == "signup-ada"
    assert failed["reason"] == REFUSED
    signups = [
        e["detail"]["eventId"] for e in result["events"] if e["detail-type"] == "UserSignedUp"
    ]
    assert signups == ["signup-ada", "signup-bob", "signup-ada"]

    # The duplicate started nothing: one saga per signup, each ending as it should.
    assert result["executions"] == [
        ["signup-ada", "SUCCEEDED", None],
        ["signup-bob", "FAILED", "SagaFailed"],
    ]
    assert [r["status"] for r in result["idempotency"]] == ["COMPLETED", "COMPLETED"]
    assert result["invocations"] == {
        "welcome": 2,
        "reserve-quota": 2,
        "send-email": 2,
        "release-quota": 1,
        "record-outcome": 2,
    }
    assert result["errors"] == {"send-email": 1}  # bob's refused email, and only it
    assert result["queues"] == {"welcome": 0, "welcome-dlq": 0}
