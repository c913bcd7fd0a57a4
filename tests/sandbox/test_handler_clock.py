"""A handler's clock reads the sandbox's virtual time (`lambda_runtime.handler_clock`).

The virtual clock starts in 2030 here, years away from the real one, so a handler
reading the real clock cannot pass for one reading the virtual clock. Every bound on
a handler's time comes from its own elapsed time (CPU, sleeps), never from how fast
the machine is.
"""

from __future__ import annotations

import datetime
import importlib
import json
import pickle
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pulumi
import pydantic
import pytest

from eventcraft_sandbox.clock import VirtualClock
from eventcraft_sandbox.faults import FaultPlan
from eventcraft_sandbox.lambda_runtime import LambdaRuntime

# The originals, from the module that keeps them while installed: install rebinds a
# module-level `REAL_TIME = time.time` in every other module, this one included.
from eventcraft_sandbox.lambda_runtime import handler_clock as originals
from eventcraft_sandbox.session import SandboxSession
from pulumi_eventcraft.function import Function, FunctionArgs
from pulumi_eventcraft.table import KeyAttribute, Table, TableArgs
from tests.sandbox import test_lambda_runtime as runtime_tests
from tests.sandbox.host_layers import host_release_layer
from tests.sandbox.test_lambda_runtime import Account

aws = runtime_tests.aws  # moto, as the runtime's own tests have it
account = runtime_tests.account  # roles, tables and functions in moto

T0 = 1_908_187_200.0  # 2030-06-20T12:00:00Z


def real_now() -> float:
    """The wall clock, read where nothing replaces it."""
    return time.clock_gettime(time.CLOCK_REALTIME)


READER = """
    import calendar
    import datetime
    import time
    from datetime import UTC, date, datetime as DateTime

    def handler(event, context):
        reads = {
            "time": time.time(),
            "time_ns": time.time_ns() / 1e9,
            "now_utc": DateTime.now(UTC).timestamp(),
            "now_local": DateTime.now().timestamp(),
            "utcnow": DateTime.utcnow().replace(tzinfo=UTC).timestamp(),
            "today": DateTime.today().timestamp(),
            "module_now": datetime.datetime.now(datetime.UTC).timestamp(),
            "gmtime": calendar.timegm(time.gmtime()),
        }
        remaining_ms = context.get_remaining_time_in_millis()
        return {
            "reads": reads,
            "remaining_ms": remaining_ms,
            "after": time.time(),
            "date": date.today().isoformat(),
            "year": time.strftime("%Y"),
        }
"""


def test_a_handler_reads_the_virtual_clock_plus_its_elapsed_time(account: Account) -> None:
    account.function("reader", {"app.py": READER}, timeout=30)
    clock = VirtualClock(start=T0)
    with LambdaRuntime(clock=clock) as runtime:
        runtime.invoke("reader", {})  # cold: the init phase's time is its own
        result = runtime.invoke("reader", {})
    assert result.error_type is None, result.error_message
    payload = result.payload
    after = payload["after"]
    # Its elapsed time is the handler's Duration, and the runtime's own few CPU
    # microseconds on the thread before it.
    assert T0 < after < T0 + result.duration_ms / 1000 + 0.005
    for name, value in payload["reads"].items():
        assert T0 - 1 < value <= after, name  # gmtime has whole seconds
        if name != "gmtime":
            assert value >= T0, name
    # The clock and the context agree: now + remaining = the start + the timeout.
    deadline = payload["reads"]["time"] + payload["remaining_ms"] / 1000
    assert deadline == pytest.approx(T0 + 30, abs=0.005)
    assert payload["date"] == originals.REAL_DATE.fromtimestamp(T0).isoformat()
    assert payload["year"] == "2030"
    assert clock.now() == T0  # reading the clock does not move it


SLEEPER = """
    import time
    from datetime import UTC, datetime

    def reads():
        return [time.time(), datetime.now(UTC).timestamp(), datetime.utcnow().isoformat()]

    def handler(event, context):
        before = reads()
        time.sleep(event["sleep"])
        return {"before": before, "after": reads()}
"""


def test_a_sleep_of_600_seconds_moves_the_handlers_clock_by_600_seconds(
    account: Account,
) -> None:
    account.function("sleeper", {"app.py": SLEEPER}, timeout=900)
    clock = VirtualClock(start=T0)
    with LambdaRuntime(clock=clock) as runtime:
        result = runtime.invoke("sleeper", {"sleep": 600})
    assert result.error_type is None, result.error_message
    before, after = result.payload["before"], result.payload["after"]
    assert 600 <= after[0] - before[0] < 601
    assert 600 <= after[1] - before[1] < 601
    parse = originals.REAL_DATETIME.fromisoformat
    moved = parse(after[2]) - parse(before[2])
    assert 600 <= moved.total_seconds() < 601
    assert clock.now() == T0 + 600


def test_a_loop_bounded_by_the_handlers_clock_ends_as_in_aws(account: Account) -> None:
    """Poll every second for ten seconds: ten sleeps, then the deadline has passed."""
    account.function(
        "poller",
        {
            "app.py": """
                import time
                from datetime import UTC, datetime, timedelta

                def handler(event, context):
                    polls, deadline = 0, time.time() + 10
                    while time.time() < deadline:
                        time.sleep(1)
                        polls += 1
                    until = datetime.now(UTC) + timedelta(seconds=10)
                    while datetime.now(UTC) < until:
                        time.sleep(1)
                        polls += 1
                    return polls
            """
        },
        timeout=60,
    )
    clock = VirtualClock(start=T0)
    with LambdaRuntime(clock=clock) as runtime:
        result = runtime.invoke("poller", {})
    assert result.error_type is None, result.error_message
    assert result.payload == 20
    assert clock.now() == T0 + 20


def test_the_handlers_clock_moves_with_its_cpu_time_and_never_back(account: Account) -> None:
    account.function(
        "spinner",
        {
            "app.py": """
                import time

                def handler(event, context):
                    cpu, first = time.thread_time(), time.time()
                    reads = [first]
                    while time.thread_time() - cpu < event["cpu"]:
                        reads.append(time.time())
                    return {
                        "cpu": time.thread_time() - cpu,
                        "moved": time.time() - first,
                        "backwards": sum(b < a for a, b in zip(reads, reads[1:])),
                    }
            """
        },
        timeout=60,
    )
    with LambdaRuntime(clock=VirtualClock(start=T0)) as runtime:
        result = runtime.invoke("spinner", {"cpu": 0.3})
    assert result.error_type is None, result.error_message
    payload = result.payload
    assert payload["backwards"] == 0
    # Measured on the thread's CPU clock, as the handler's time is (timeout_scale 1).
    assert payload["moved"] == pytest.approx(payload["cpu"], abs=0.02)


def test_other_threads_and_a_runtime_without_a_clock_read_the_real_clock(
    account: Account,
) -> None:
    account.function(
        "threads",
        {
            "app.py": """
                import threading
                import time
                from datetime import UTC, datetime

                def handler(event, context):
                    seen = {}

                    def other():
                        seen["time"] = time.time()
                        seen["datetime"] = datetime.now(UTC).timestamp()

                    worker = threading.Thread(target=other)
                    worker.start()
                    worker.join()
                    return {"own": time.time(), "other": seen}
            """
        },
    )
    started = real_now()
    with LambdaRuntime(clock=VirtualClock(start=T0)) as runtime:
        virtual = runtime.invoke("threads", {})
        # The test's own thread reads the real clock while the runtime is installed.
        host_reads = [time.time(), datetime.datetime.now(datetime.UTC).timestamp()]
    with LambdaRuntime() as runtime:
        unclocked = runtime.invoke("threads", {})
    ended = real_now()
    assert virtual.error_type is None, virtual.error_message
    assert T0 <= virtual.payload["own"] < T0 + 5
    reads = [
        *host_reads,
        *virtual.payload["other"].values(),
        unclocked.payload["own"],
        *unclocked.payload["other"].values(),
    ]
    for value in reads:
        assert started <= value <= ended


def test_a_synchronous_invocation_starts_at_its_callers_time(account: Account) -> None:
    account.function(
        "inner",
        {
            "app.py": """
                import time

                def handler(event, context):
                    started = time.time()
                    time.sleep(30)
                    return started
            """
        },
        timeout=60,
    )
    account.function(
        "outer",
        {
            "app.py": """
                import json
                import time

                import boto3

                def handler(event, context):
                    time.sleep(5)
                    before = time.time()
                    response = boto3.client("lambda").invoke(FunctionName="inner")
                    inner = json.loads(response["Payload"].read())
                    return {"before": before, "inner": inner, "after": time.time()}
            """
        },
        timeout=120,
    )
    with LambdaRuntime(clock=VirtualClock(start=T0)) as runtime:
        result = runtime.invoke("outer", {})
    assert result.error_type is None, result.error_message
    payload = result.payload
    assert T0 + 5 <= payload["before"] <= payload["inner"] < payload["before"] + 1
    assert payload["inner"] + 30 <= payload["after"] < payload["inner"] + 31


# ------------------------------------------------------------ captured references

PROBE = """
    from datetime import UTC, datetime
    from time import time


    def stamps(clock=time, now=datetime.now):
        return {
            "time": time(),
            "datetime": datetime.now(UTC).timestamp(),
            "default": clock(),
            "bound_default": now(UTC).timestamp(),
            "class_attribute": Probe().clock(),
        }


    class Probe:
        clock = time
"""


@pytest.fixture
def probes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """Imports modules like PROBE from tmp_path (names made up by the test)."""
    monkeypatch.syspath_prepend(str(tmp_path))
    names: list[str] = []

    def load(name: str) -> Any:
        (tmp_path / f"{name}.py").write_text(textwrap.dedent(PROBE))
        importlib.invalidate_caches()
        names.append(name)
        return importlib.import_module(name)

    yield load
    for name in names:
        sys.modules.pop(name, None)


def test_references_captured_before_install_read_the_virtual_clock_in_handlers(
    account: Account, probes: Any
) -> None:
    early = probes("clock_probe_early")  # imported before the runtime, like eventcraft
    account.function(
        "prober",
        {
            "app.py": """
                import sys

                # The host's module: what a package the layer shares with the host is.
                clock_probe_early = sys.modules["clock_probe_early"]

                def handler(event, context):
                    return clock_probe_early.stamps()
            """
        },
    )
    started = real_now()
    with LambdaRuntime(clock=VirtualClock(start=T0)) as runtime:
        assert early.datetime is datetime.datetime is not originals.REAL_DATETIME
        assert early.time is time.time is not originals.REAL_TIME
        late = probes("clock_probe_late")  # imported while installed
        assert late.datetime is datetime.datetime
        result = runtime.invoke("prober", {})
        host = early.stamps()
    ended = real_now()
    assert result.error_type is None, result.error_message
    for name, value in result.payload.items():
        assert T0 <= value < T0 + 5, name
    for name, value in host.items():
        assert started <= value <= ended, name
    # Uninstall puts the originals back, in the modules imported meanwhile too.
    for probe in (early, late):
        assert probe.datetime is originals.REAL_DATETIME
        assert probe.time is originals.REAL_TIME
        assert probe.stamps.__defaults__ == (originals.REAL_TIME, originals.REAL_DATETIME.now)
        assert vars(probe.Probe)["clock"] is originals.REAL_TIME
    assert datetime.datetime is originals.REAL_DATETIME
    assert datetime.date is originals.REAL_DATE
    assert time.time is originals.REAL_TIME


# ------------------------------------------------- the stand-in datetime classes


def test_the_stand_in_classes_accept_real_instances_and_make_real_ones(aws: None) -> None:
    real_class, real_date = originals.REAL_DATETIME, originals.REAL_DATE
    real = real_class(2030, 6, 20, 12, tzinfo=datetime.UTC)
    with LambdaRuntime(clock=VirtualClock(start=T0)):
        stand_in = datetime.datetime
        assert stand_in is not real_class
        made = stand_in(2030, 6, 20, 12, tzinfo=datetime.UTC)
        parsed = stand_in.fromisoformat("2030-06-20T12:00:00+00:00")
        assert type(made) is real_class and type(parsed) is real_class
        assert made == parsed == real
        assert isinstance(real, stand_in) and isinstance(made, real_class)
        assert issubclass(real_class, stand_in) and issubclass(stand_in, real_class)
        assert isinstance(real, datetime.date) and not isinstance(real.date(), stand_in)
        assert type(datetime.date(2030, 6, 20)) is real_date
        # Equal to the real class, with its hash: either finds the other in a dict.
        assert {stand_in: "found"}.get(real_class) == "found"
        assert {real_class: "found"}.get(stand_in) == "found"
        assert stand_in != datetime.date

        class Stamp(pydantic.BaseModel):  # a model defined while installed
            at: datetime.datetime
            day: datetime.date

        stamp = Stamp.model_validate({"at": "2030-06-20T12:00:00Z", "day": "2030-06-20"})
        assert stamp.at == real and type(stamp.at) is real_class
        assert json.loads(stamp.model_dump_json()) == {
            "at": "2030-06-20T12:00:00Z",
            "day": "2030-06-20",
        }
        assert pickle.loads(pickle.dumps(real)) == real
        assert pickle.loads(pickle.dumps(real.date())) == real.date()
    assert pickle.loads(pickle.dumps(real)) == real


FIRST_USE_WHILE_INSTALLED = """
import datetime
import sys

import pydantic
from moto import mock_aws

from eventcraft_sandbox.lambda_runtime import LambdaRuntime

assert "pydantic._internal._generate_schema" not in sys.modules  # imported lazily
with mock_aws(), LambdaRuntime():

    class During(pydantic.BaseModel):  # pydantic builds its tables of types now
        at: datetime.datetime


class After(pydantic.BaseModel):
    at: datetime.datetime
    day: datetime.date


print(After(at="2030-06-20T12:00:00Z", day="2030-06-20").model_dump_json())
"""


def test_pydantic_first_used_while_installed_still_knows_datetime_after_uninstall() -> None:
    """A library imported while installed captured the stand-ins for good (here
    pydantic's table of known types); they still match the real classes after."""
    run = subprocess.run(
        [sys.executable, "-c", FIRST_USE_WHILE_INSTALLED],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout) == {"at": "2030-06-20T12:00:00Z", "day": "2030-06-20"}


# ------------------------------------------------------ Powertools idempotency

GUARDED = """
import os

import boto3
from aws_lambda_powertools.utilities.idempotency import (
    DynamoDBPersistenceLayer,
    IdempotencyConfig,
    idempotent,
)

PERSISTENCE = DynamoDBPersistenceLayer(table_name=os.environ["IDEMPOTENCY_TABLE"])


@idempotent(persistence_store=PERSISTENCE, config=IdempotencyConfig(event_key_jmespath="id"))
def handler(event, context):
    boto3.client("dynamodb").put_item(
        TableName=os.environ["TABLE"], Item={"pk": {"S": "paid#" + event["id"]}}
    )
    return {"paid": event["id"]}
"""
TIMEOUT = 5


def _guarded_program(code_dir: Path, layer_dir: Path) -> Any:
    def program() -> None:
        powertools = host_release_layer("powertools", layer_dir, "aws-lambda-powertools")
        items = Table("items", TableArgs(hash_key=KeyAttribute("pk")))
        idempotency = Table("idempotency", TableArgs(hash_key=KeyAttribute("id")))
        guarded = Function(
            "guarded",
            FunctionArgs(
                handler="handlers.guarded.handler",
                timeout_seconds=TIMEOUT,
                code_dir=code_dir,
                layer=powertools,
                alarms=False,
                environment={"TABLE": items.name, "IDEMPOTENCY_TABLE": idempotency.name},
            ),
        )
        guarded.grant_read_write(items)
        guarded.grant_read_write(idempotency)
        pulumi.export("functions", {"guarded": guarded.name})
        pulumi.export("tables", {"items": items.name, "idempotency": idempotency.name})

    return program


def test_a_function_stopped_mid_way_is_retried_after_its_timeout_and_completes(
    tmp_path: Path,
) -> None:
    """timeout-mid stops the function right after Powertools wrote its INPROGRESS
    record. A retry within the function's timeout is refused, as in AWS; once the
    timeout has passed in virtual time, the record has expired and the retry runs."""
    handlers = tmp_path / "code" / "handlers"
    handlers.mkdir(parents=True)
    (handlers / "__init__.py").write_text("")
    (handlers / "guarded.py").write_text(GUARDED)
    (tmp_path / "layer").mkdir()
    with SandboxSession(
        _guarded_program(tmp_path / "code", tmp_path / "layer"),
        project="handlerclock",
        clock_start=T0,
        faults=["timeout-mid@guarded=1"],
    ) as session:
        first = session.invoke("guarded", {"id": "o-1"})
        assert first.error_type == "Sandbox.Timedout"
        (record,) = session.scan("idempotency")
        assert record["status"] == "INPROGRESS"
        # Powertools stamped the expiry on the handler's clock: the virtual one, at the
        # function's deadline (its start, plus its init time, plus its timeout).
        expiry = int(record["in_progress_expiration"]) / 1000
        assert T0 + TIMEOUT - 0.01 < expiry < T0 + TIMEOUT + 1
        assert session.fault_injector is not None
        session.faults = session.fault_injector.plan = FaultPlan.parse([])
        soon = session.invoke("guarded", {"id": "o-1"})
        session.clock.advance(TIMEOUT + 1)  # its caller retries after the timeout
        late = session.invoke("guarded", {"id": "o-1"})
        items = [item["pk"] for item in session.scan("items")]
        (record,) = session.scan("idempotency")
    assert soon.error_type == "IdempotencyAlreadyInProgressError"
    assert late.error_type is None, late.error_message
    assert late.payload == {"paid": "o-1"}
    assert items == ["paid#o-1"]
    assert record["status"] == "COMPLETED"
