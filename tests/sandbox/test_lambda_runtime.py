"""The sandbox's Lambda runtime: functions created in moto, run in-process like Lambda.

Every function here is a zip built from small handler sources under tmp_path, created
in moto with an IAM role, and run by `LambdaRuntime` (directly, through boto3's Invoke,
or as a Step Functions task).
"""

from __future__ import annotations

import base64
import io
import json
import os
import sys
import textwrap
import threading
import time
import zipfile
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import boto3
import moto
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws
from moto.core.authorization import enable_iam_authentication

import eventcraft.clients as host_clients
from eventcraft_sandbox.clock import VirtualClock
from eventcraft_sandbox.lambda_runtime import (
    MOTO_LOCK,
    PINNED_MOTO,
    InternalInvocationError,
    InvocationResult,
    LambdaRuntime,
    LambdaRuntimeError,
    MotoHookError,
    MotoLock,
    check_moto_hooks,
    install_moto_lock,
    uninstall_moto_lock,
)
from tests.sandbox.host_layers import host_release_zip

REGION = "us-east-1"
SCALE = 0.5  # a function second lasts half a real second here


def trust(service: str) -> dict[str, Any]:
    return {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Principal": {"Service": service}, "Action": "sts:AssumeRole"}
        ],
    }


def policy(*statements: Mapping[str, Any]) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)})


class Account:
    """Creates roles, tables and functions in moto (with moto's default identity)."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.iam = boto3.client("iam", region_name=REGION)
        self.lambda_ = boto3.client("lambda", region_name=REGION)
        self.dynamodb = boto3.client("dynamodb", region_name=REGION)

    def role(
        self,
        name: str,
        statements: Sequence[Mapping[str, Any]] = (),
        service: str = "lambda.amazonaws.com",
    ) -> str:
        arn = self.iam.create_role(
            RoleName=name, AssumeRolePolicyDocument=json.dumps(trust(service))
        )["Role"]["Arn"]
        if statements:
            self.iam.put_role_policy(
                RoleName=name, PolicyName=f"{name}-grants", PolicyDocument=policy(*statements)
            )
        return str(arn)

    def table(self, name: str) -> str:
        created = self.dynamodb.create_table(
            TableName=name,
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        return str(created["TableDescription"]["TableArn"])

    def keys(self, table: str) -> set[str]:
        items = self.dynamodb.scan(TableName=table)["Items"]
        return {item["pk"]["S"] for item in items}

    def function(
        self,
        name: str,
        sources: Mapping[str, str],
        *,
        handler: str = "app.handler",
        environment: Mapping[str, str] | None = None,
        timeout: int = 3,
        memory: int = 128,
        statements: Sequence[Mapping[str, Any]] = (),
        role: str | None = None,
        layers: Sequence[str] = (),
    ) -> str:
        root = self.tmp_path / name
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w") as archive:
            for relative, source in sources.items():
                path = root / relative
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(textwrap.dedent(source))
                archive.write(path, relative)
        created = self.lambda_.create_function(
            FunctionName=name,
            Runtime="python3.12",
            Role=role or self.role(f"{name}-role", statements),
            Handler=handler,
            Code={"ZipFile": buffer.getvalue()},
            Timeout=timeout,
            MemorySize=memory,
            Environment={"Variables": dict(environment or {})},
            Layers=list(layers),
        )
        return str(created["FunctionArn"])

    def layer(self, name: str, code: bytes) -> str:
        """A layer version of the zip `code`; its ARN."""
        published = self.lambda_.publish_layer_version(LayerName=name, Content={"ZipFile": code})
        return str(published["LayerVersionArn"])


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("AWS_ACCOUNT_ID_ENDPOINT_MODE", "disabled")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    with mock_aws(config={"stepfunctions": {"execute_state_machine": True}}):  # type: ignore[arg-type]
        yield


@pytest.fixture
def account(aws: None, tmp_path: Path) -> Account:
    return Account(tmp_path)


@pytest.fixture
def runtime(aws: None) -> Iterator[LambdaRuntime]:
    with LambdaRuntime(timeout_scale=SCALE) as installed:
        yield installed


def admin_session() -> boto3.session.Session:
    """An IAM user allowed everything (created before enforcement is turned on)."""
    iam = boto3.client("iam", region_name=REGION)
    iam.create_user(UserName="admin")
    iam.put_user_policy(
        UserName="admin",
        PolicyName="everything",
        PolicyDocument=policy({"Effect": "Allow", "Action": "*", "Resource": "*"}),
    )
    key = iam.create_access_key(UserName="admin")["AccessKey"]
    return boto3.session.Session(
        aws_access_key_id=key["AccessKeyId"],
        aws_secret_access_key=key["SecretAccessKey"],
        region_name=REGION,
    )


# ------------------------------------------------------------------ moto hooks


def test_the_hooked_moto_internals_are_the_pinned_ones() -> None:
    assert moto.__version__ == PINNED_MOTO, (
        f"moto {moto.__version__} is installed but sandbox/lambda_runtime.py hooks moto "
        f"{PINNED_MOTO}: re-read moto's source before changing the pin"
    )
    assert check_moto_hooks() == [], "\n".join(check_moto_hooks())


def test_install_fails_loudly_when_a_hooked_signature_changes(
    aws: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    from moto.awslambda.models import LambdaFunction

    def changed(self: Any, event: Any, context: Any) -> tuple[str, bool, str]:
        return "", False, ""

    monkeypatch.setattr(LambdaFunction, "_invoke_lambda", changed)
    runtime = LambdaRuntime()
    with pytest.raises(MotoHookError, match=r"moto 5\.2\.5: .*LambdaFunction\._invoke_lambda"):
        runtime.install()
    assert not runtime.installed
    runtime.close()


def test_install_is_exclusive_and_uninstall_restores_moto(aws: None) -> None:
    from moto.awslambda.models import LambdaFunction
    from moto.core.botocore_stubber import BotocoreStubber

    original_invoke = LambdaFunction._invoke_lambda
    original_request = BotocoreStubber.process_request
    with LambdaRuntime() as first:
        assert LambdaFunction._invoke_lambda is not original_invoke
        with pytest.raises(LambdaRuntimeError, match="another LambdaRuntime is installed"):
            LambdaRuntime().install()
        assert first.installed
    assert LambdaFunction._invoke_lambda is original_invoke
    assert BotocoreStubber.process_request is original_request


def test_moto_never_invokes_a_function_by_itself(account: Account, runtime: LambdaRuntime) -> None:
    sqs = boto3.client("sqs", region_name=REGION)
    url = sqs.create_queue(QueueName="orders")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    account.function("consumer", {"app.py": "def handler(event, context):\n    return 1\n"})
    # A mapping created in moto itself (the deployer never does this): moto would
    # invoke synchronously inside SendMessage, one record at a time.
    account.lambda_.create_event_source_mapping(EventSourceArn=queue_arn, FunctionName="consumer")
    with pytest.raises(InternalInvocationError, match=r"moto tried to invoke .*consumer"):
        sqs.send_message(QueueUrl=url, MessageBody="{}")


# ------------------------------------------------------------------ isolation

SHARED_MODULE_HANDLER = """
    from eventcraft import clients

    def handler(event, context):
        clients.CALLS.append(event["n"])
        return {"who": clients.WHO, "calls": list(clients.CALLS)}
"""


def test_functions_using_the_same_module_names_never_share_globals(
    account: Account, runtime: LambdaRuntime
) -> None:
    for who in ("a", "b"):
        account.function(
            f"fn-{who}",
            {
                "eventcraft/__init__.py": "",
                "eventcraft/clients.py": f"WHO = {who!r}\nCALLS = []\n",
                "handlers/__init__.py": "",
                "handlers/entry.py": SHARED_MODULE_HANDLER,
            },
            handler="handlers.entry.handler",
        )

    assert runtime.invoke("fn-a", {"n": 1}).payload == {"who": "a", "calls": [1]}
    assert runtime.invoke("fn-b", {"n": 2}).payload == {"who": "b", "calls": [2]}
    assert runtime.invoke("fn-a", {"n": 3}).payload == {"who": "a", "calls": [1, 3]}
    # The host's own eventcraft (functions/ on the test path) was set aside and put back.
    assert sys.modules["eventcraft.clients"] is host_clients
    assert not hasattr(host_clients, "WHO")
    assert "handlers.entry" not in sys.modules


def test_warm_state_survives_between_invocations_of_the_same_function(
    account: Account, runtime: LambdaRuntime
) -> None:
    account.function(
        "counter",
        {
            "app.py": """
                from decimal import Decimal

                INITS = {"count": 0}
                INITS["count"] += 1
                COUNT = 0

                def handler(event, context):
                    global COUNT
                    COUNT += 1
                    return {"count": COUNT, "inits": INITS["count"], "half": Decimal("0.5")}
            """
        },
    )
    results = [runtime.invoke("counter", {}) for _ in range(3)]
    assert [r.payload for r in results] == [
        {"count": n, "inits": 1, "half": 0.5} for n in (1, 2, 3)
    ]
    assert "INIT_START" in results[0].logs
    assert "Init Duration" in results[0].logs
    assert all("INIT_START" not in r.logs for r in results[1:])
    assert runtime.warm_containers("counter") == 1


def test_environment_and_role_credentials_exist_only_during_the_call(
    account: Account, runtime: LambdaRuntime, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOST_ONLY", "host")
    arn = account.function(
        "env-reader",
        {
            "app.py": """
                import os
                import sys

                import boto3

                def handler(event, context):
                    identity = boto3.client("sts").get_caller_identity()
                    return {
                        "greeting": os.environ.get("GREETING"),
                        "host_only": os.environ.get("HOST_ONLY"),
                        "name": os.environ["AWS_LAMBDA_FUNCTION_NAME"],
                        "region": os.environ["AWS_REGION"],
                        "key": os.environ["AWS_ACCESS_KEY_ID"],
                        "token": bool(os.environ.get("AWS_SESSION_TOKEN")),
                        "task_root_first": sys.path[0] == os.environ["LAMBDA_TASK_ROOT"],
                        "caller": identity["Arn"],
                    }
            """
        },
        environment={"GREETING": "hello"},
    )
    host_key = os.environ["AWS_ACCESS_KEY_ID"]
    payload = runtime.invoke(arn, {}).payload
    assert payload["greeting"] == "hello"
    assert payload["host_only"] is None
    assert payload["name"] == "env-reader"
    assert payload["region"] == REGION
    assert payload["key"] != host_key
    assert payload["token"] is True
    assert payload["task_root_first"] is True
    assert payload["caller"].endswith(":assumed-role/env-reader-role/env-reader")
    assert "GREETING" not in os.environ
    assert os.environ["HOST_ONLY"] == "host"
    assert os.environ["AWS_ACCESS_KEY_ID"] == host_key


def test_context_describes_the_invocation_and_counts_down(
    account: Account, runtime: LambdaRuntime
) -> None:
    arn = account.function(
        "ctx",
        {
            "app.py": """
                import os
                import time

                def handler(event, context):
                    first = context.get_remaining_time_in_millis()
                    time.sleep(0.2)
                    return {
                        "request_id": context.aws_request_id,
                        "name": context.function_name,
                        "version": context.function_version,
                        "arn": context.invoked_function_arn,
                        "memory": context.memory_limit_in_mb,
                        "group": context.log_group_name,
                        "stream_matches_env": (
                            context.log_stream_name == os.environ["AWS_LAMBDA_LOG_STREAM_NAME"]
                        ),
                        "first": first,
                        "second": context.get_remaining_time_in_millis(),
                    }
            """
        },
        memory=256,
        timeout=3,
    )
    result = runtime.invoke("ctx", {})
    payload = result.payload
    assert payload["name"] == "ctx"
    assert payload["version"] == "$LATEST"
    assert payload["arn"] == arn
    assert payload["memory"] == "256"  # a string, as in the AWS runtime
    assert payload["group"] == "/aws/lambda/ctx"
    assert payload["stream_matches_env"] is True
    assert f"START RequestId: {payload['request_id']}" in result.logs
    # The 0.2 s sleep is virtual: it counts 200 ms (and the CPU between the two reads,
    # a few ms at most).
    assert 2000 < payload["first"] <= 3000
    assert 200 <= payload["first"] - payload["second"] < 400


def test_a_layers_own_modules_are_importable_after_the_venvs(
    account: Account, runtime: LambdaRuntime, tmp_path: Path
) -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("python/layerlib.py", "VALUE = 'from the layer'\n")
    layer = account.lambda_.publish_layer_version(
        LayerName="shared-lib", Content={"ZipFile": buffer.getvalue()}
    )["LayerVersionArn"]
    account.function(
        "layered",
        {
            "app.py": """
                import sys

                import layerlib

                def handler(event, context):
                    layer_dir = next(p for p in sys.path if p.endswith("python"))
                    venv_dir = next(p for p in sys.path if p.endswith("site-packages"))
                    return {
                        "value": layerlib.VALUE,
                        "layer_last": sys.path.index(layer_dir) > sys.path.index(venv_dir),
                    }
            """
        },
    )
    account.lambda_.update_function_configuration(FunctionName="layered", Layers=[layer])
    result = runtime.invoke("layered", {})
    assert result.payload == {"value": "from the layer", "layer_last": True}
    assert "layerlib" not in sys.modules


def test_invoke_needs_an_installed_runtime(account: Account) -> None:
    account.function("idle", {"app.py": "def handler(event, context):\n    return 1\n"})
    runtime = LambdaRuntime()
    with pytest.raises(LambdaRuntimeError, match=r"not installed: call install\(\) first"):
        runtime.invoke("idle", {})
    runtime.close()


# ------------------------------------------------------------------ failures

SLOW_WRITER = """
    import time

    import boto3

    def handler(event, context):
        if "table" not in event:
            return "nothing to write"
        dynamodb = boto3.client("dynamodb")
        dynamodb.put_item(TableName=event["table"], Item={"pk": {"S": "before"}})
        time.sleep(event["sleep"])
        dynamodb.put_item(TableName=event["table"], Item={"pk": {"S": "after"}})
        return "finished"
"""


def test_a_timeout_is_reported_and_keeps_the_side_effects_made_before_it(
    account: Account,
) -> None:
    table_arn = account.table("orders")
    account.function(
        "slow",
        {"app.py": SLOW_WRITER},
        timeout=1,
        statements=[{"Effect": "Allow", "Action": "dynamodb:PutItem", "Resource": table_arn}],
    )
    clock = VirtualClock(start=1_000.0)
    with LambdaRuntime(clock=clock) as runtime:
        result = runtime.invoke("slow", {"table": "orders", "sleep": 1.6})
        assert result.error_type == "Sandbox.Timedout"
        assert result.error_message is not None
        assert result.error_message.endswith("Task timed out after 1.00 seconds")
        assert result.payload is None
        assert "Task timed out after 1.00 seconds" in result.logs
        # The write before the sleep stands; the one after it never happens: the sleep
        # ran into the deadline, where Lambda stops the function (and the clock with it).
        assert account.keys("orders") == {"before"}
        assert 0 < clock.now() - 1_000.0 <= 1.0

        # The next invocation starts a fresh execution environment.
        again = runtime.invoke("slow", {})
        assert again.error_type is None, again.error_message
        assert again.payload == "nothing to write"
        assert "INIT_START" in again.logs


DECLINER = """
    class PaymentDeclined(Exception):
        pass

    def handler(event, context):
        if event.get("amount", 0) > 100:
            raise PaymentDeclined(f"amount {event['amount']} is over the limit")
        return {"charged": event.get("amount", 0), "by": context.function_name}
"""


def test_an_unhandled_exception_reports_its_class_name(
    account: Account, runtime: LambdaRuntime
) -> None:
    account.function("payments", {"app.py": DECLINER})

    result = runtime.invoke("payments", {"amount": 500})
    assert result.error_type == "PaymentDeclined"
    assert result.error_message == "amount 500 is over the limit"
    assert "[ERROR] PaymentDeclined: amount 500 is over the limit" in result.logs
    assert "Traceback (most recent call last)" in result.logs

    # Through the Invoke API, as Lambda answers it.
    response = account.lambda_.invoke(
        FunctionName="payments", Payload=json.dumps({"amount": 500}), LogType="Tail"
    )
    assert response["FunctionError"] == "Unhandled"
    error = json.loads(response["Payload"].read())
    assert error["errorType"] == "PaymentDeclined"
    assert error["errorMessage"] == "amount 500 is over the limit"
    assert error["stackTrace"]
    assert "lambda_runtime" not in "".join(error["stackTrace"])  # starts in the function
    assert "START RequestId" in base64.b64decode(response["LogResult"]).decode()

    ok = account.lambda_.invoke(FunctionName="payments", Payload=json.dumps({"amount": 5}))
    assert "FunctionError" not in ok
    assert json.loads(ok["Payload"].read()) == {"charged": 5, "by": "payments"}


RUNTIME_ERRORS = [
    (
        "app.missing",
        "def handler(event, context):\n    return 1\n",
        "Runtime.HandlerNotFound",
        "Handler 'missing' missing on module 'app'",
    ),
    (
        "nowhere.handler",
        "",
        "Runtime.ImportModuleError",
        "Unable to import module 'nowhere': No module named 'nowhere'",
    ),
    (
        "app.handler",
        "import host_only_helper\n\ndef handler(event, context):\n    return 1\n",
        "Runtime.ImportModuleError",
        "Unable to import module 'app': No module named 'host_only_helper'",
    ),
    (
        "app.handler",
        "def handler(event, context):\n    return {1, 2}\n",
        "Runtime.MarshalError",
        "Unable to marshal response: Object of type set is not JSON serializable",
    ),
    (
        "app.handler",
        "def handler(event, context:\n",
        "Runtime.UserCodeSyntaxError",
        "Syntax error in module 'app'",
    ),
    ("apphandler", "", "Runtime.MalformedHandlerName", "Bad handler 'apphandler'"),
]


def test_runtime_errors_are_lambdas(
    account: Account, runtime: LambdaRuntime, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Importable on the host (like the repository's modules), but not in any zip.
    host_dir = tmp_path / "host"
    host_dir.mkdir()
    (host_dir / "host_only_helper.py").write_text("VALUE = 1\n")
    monkeypatch.syspath_prepend(str(host_dir))

    for n, (handler, source, error_type, message) in enumerate(RUNTIME_ERRORS):
        account.function(f"broken-{n}", {"app.py": source}, handler=handler)
        result = runtime.invoke(f"broken-{n}", {})
        assert (result.error_type, result.payload) == (error_type, None), handler
        assert result.error_message is not None
        assert result.error_message.startswith(message), result.error_message


def test_an_import_error_names_the_module_as_the_handler_string_does(
    account: Account, runtime: LambdaRuntime
) -> None:
    account.function(
        "foldered",
        {"lib/app.py": "import json5\n\ndef handler(event, context):\n    return 1\n"},
        handler="lib/app.handler",
    )
    result = runtime.invoke("foldered", {})
    assert result.error_type == "Runtime.ImportModuleError"
    assert result.error_message == "Unable to import module 'lib/app': No module named 'json5'"


# What the venv has beside Lambda's runtime: requests came with moto and this process has
# imported it; json5 (a dev tool) is imported here by nobody; imp left the stdlib in 3.12.
NOT_IN_LAMBDA = (
    ("import requests", "requests"),
    ("import json5", "json5"),
    ("from json5 import loads", "json5"),
    ("import imp", "imp"),
    ("import layerlib", "json5"),  # the layer's own module imports it
)


@pytest.mark.parametrize(("statement", "missing"), NOT_IN_LAMBDA)
def test_the_functions_code_finds_only_what_lambda_gives_it(
    account: Account,
    runtime: LambdaRuntime,
    monkeypatch: pytest.MonkeyPatch,
    statement: str,
    missing: str,
) -> None:
    """What the host's venv has beside the runtime's boto3, the code and the layers is
    not there for the function's code, imported before or not: Lambda's init error."""
    monkeypatch.delitem(sys.modules, "json5", raising=False)
    assert "requests" in sys.modules  # moto's: no finder is asked for it again
    layer = io.BytesIO()
    with zipfile.ZipFile(layer, "w") as archive:
        archive.writestr("python/layerlib.py", "import json5\n")
    account.function(
        "importer",
        {"app.py": f"{statement}\n\ndef handler(event, context):\n    return 1\n"},
        layers=[account.layer("libs", layer.getvalue())],
    )
    result = runtime.invoke("importer", {})
    assert result.error_type == "Runtime.ImportModuleError"
    assert result.error_message == f"Unable to import module 'app': No module named '{missing}'"
    assert "json5" not in sys.modules


IMPORTS_AT_RUN_TIME = """
import importlib
import pkgutil

import yaml


def handler(event, context):
    found = {}
    for name, load in (
        ("import_module", lambda: importlib.import_module("json5")),
        ("resolve_name", lambda: pkgutil.resolve_name("requests:get")),
        ("statement", lambda: __import__("requests")),
        ("through_yaml", lambda: yaml.unsafe_load("!!python/name:json5.loads")),
    ):
        try:
            found[name] = "found in " + getattr(load(), "__module__", "?").split(".")[0]
        except ImportError as exc:
            found[name] = f"{type(exc).__name__}: {exc}"
    return found
"""


def test_imports_at_run_time_are_refused_to_the_function_not_to_host_code(
    account: Account, runtime: LambdaRuntime
) -> None:
    """importlib and the stdlib import on their caller's behalf: the function's. A
    package the layer shares with the host (PyYAML, the host's own release) is host
    code: what it imports itself is found, as its dependencies would be in the layer."""
    account.function(
        "late",
        {"app.py": IMPORTS_AT_RUN_TIME},
        layers=[account.layer("yaml", host_release_zip("PyYAML"))],
    )
    result = runtime.invoke("late", {})
    assert result.error_type is None, result.error_message
    assert result.payload == {
        "import_module": "ModuleNotFoundError: No module named 'json5'",
        "resolve_name": "ModuleNotFoundError: No module named 'requests'",
        "statement": "ModuleNotFoundError: No module named 'requests'",
        "through_yaml": "found in json5",
    }


def test_the_runtimes_boto3_and_the_stdlib_are_there_without_a_layer(
    account: Account, runtime: LambdaRuntime
) -> None:
    account.function(
        "plain",
        {
            "app.py": """
                import json
                import zoneinfo

                import boto3
                import botocore
                import dateutil.parser
                import jmespath
                import s3transfer
                import six
                import urllib3

                def handler(event, context):
                    return jmespath.search("a.b", json.loads('{"a": {"b": 1}}'))
            """
        },
    )
    result = runtime.invoke("plain", {})
    assert (result.error_type, result.payload) == (None, 1), result.error_message


# ------------------------------------------------------------------ logs


def test_output_is_captured_per_invocation_and_written_to_the_log_group(
    account: Account, runtime: LambdaRuntime, capsys: pytest.CaptureFixture[str]
) -> None:
    logs = boto3.client("logs", region_name=REGION)
    logs.create_log_group(logGroupName="/aws/lambda/talker")
    account.function(
        "talker",
        {
            "app.py": """
                import logging
                import sys

                from aws_lambda_powertools import Logger

                logger = Logger(service="talker")

                def handler(event, context):
                    print(f"printed {event['n']}")
                    sys.stderr.write(f"to stderr {event['n']}\\n")
                    logging.getLogger("app").warning("warned %s", event["n"])
                    logger.info("powertools says hi", extra={"n": event["n"]})
                    return event["n"]
            """
        },
        environment={"POWERTOOLS_LOG_LEVEL": "INFO"},
        layers=[account.layer("powertools", host_release_zip("aws-lambda-powertools"))],
    )
    first, second = runtime.invoke("talker", {"n": 1}), runtime.invoke("talker", {"n": 2})
    for n, result in ((1, first), (2, second)):
        assert result.logs.count(f"printed {n}") == 1
        assert result.logs.count(f"to stderr {n}") == 1
        assert result.logs.count(f"warned {n}") == 1
        assert "[WARNING]\t" in result.logs
        powertools = [line for line in result.logs.splitlines() if "powertools says hi" in line]
        assert len(powertools) == 1
        assert json.loads(powertools[0])["n"] == n
    assert "printed 1" not in second.logs
    captured = capsys.readouterr()
    assert "printed" not in captured.out + captured.err

    events = logs.filter_log_events(logGroupName="/aws/lambda/talker")["events"]
    messages = [event["message"] for event in events]
    assert "printed 1" in messages
    assert "printed 2" in messages
    assert sum(m.startswith("REPORT RequestId") for m in messages) == 2


# ------------------------------------------------------------------ IAM


WRITER = """
    import boto3

    def handler(event, context):
        dynamodb = boto3.client("dynamodb")
        if "transact" in event:
            dynamodb.transact_write_items(
                TransactItems=[
                    {"Put": {"TableName": table, "Item": {"pk": {"S": "in-transaction"}}}}
                    for table in event["transact"]
                ]
            )
        else:
            dynamodb.put_item(TableName=event["table"], Item={"pk": {"S": "written"}})
        return "ok"
"""


def test_a_handler_gets_exactly_what_its_role_allows(
    account: Account, runtime: LambdaRuntime
) -> None:
    admin = admin_session().client("dynamodb")
    table_a = account.table("table-a")
    table_b = account.table("table-b")
    account.function(
        "writer",
        {"app.py": WRITER},
        statements=[{"Effect": "Allow", "Action": "dynamodb:PutItem", "Resource": table_a}],
    )
    account.function(
        "untrusted",
        {"app.py": "def handler(event, context):\n    return 1\n"},
        role=account.role("ec2-role", service="ec2.amazonaws.com"),
    )
    with enable_iam_authentication():
        allowed = runtime.invoke("writer", {"table": "table-a"})
        denied = runtime.invoke("writer", {"table": "table-b"})
        # A transaction is authorised item by item, as the single-item action.
        transaction = runtime.invoke("writer", {"transact": ["table-a"]})
        mixed = runtime.invoke("writer", {"transact": ["table-a", "table-b"]})
        untrusted = runtime.invoke("untrusted", {})
        a_items = {item["pk"]["S"] for item in admin.scan(TableName="table-a")["Items"]}
        b_items = admin.scan(TableName="table-b")["Items"]
    assert allowed.error_type is None, allowed.error_message
    assert allowed.payload == "ok"
    assert transaction.error_type is None, transaction.error_message
    for refused in (denied, mixed):
        assert refused.error_type == "ClientError"
        assert refused.error_message is not None
        assert "(AccessDeniedException)" in refused.error_message
        assert (
            "User: arn:aws:sts::123456789012:assumed-role/writer-role/writer is not authorized "
            f"to perform: dynamodb:PutItem on resource: {table_b}"
        ) in refused.error_message
    assert a_items == {"written", "in-transaction"}
    assert b_items == []
    assert untrusted.error_type == "AccessDeniedException"
    assert "cannot be assumed by Lambda" in (untrusted.error_message or "")


# ------------------------------------------------------------------ Step Functions


def run_execution(sfn: Any, machine_arn: str, name: str, payload: Any) -> dict[str, Any]:
    execution = sfn.start_execution(
        stateMachineArn=machine_arn, name=name, input=json.dumps(payload)
    )["executionArn"]
    deadline = time.monotonic() + 20
    while True:
        described: dict[str, Any] = sfn.describe_execution(executionArn=execution)
        if described["status"] != "RUNNING" or time.monotonic() > deadline:
            return described
        time.sleep(0.05)


def test_step_functions_lambda_tasks_run_through_the_runtime(
    account: Account, runtime: LambdaRuntime
) -> None:
    admin = admin_session()
    function_arn = account.function("pay", {"app.py": DECLINER})
    invoke = {"Effect": "Allow", "Action": "lambda:InvokeFunction", "Resource": function_arn}
    role = account.role("saga-role", [invoke], service="states.amazonaws.com")
    no_rights = account.role("no-rights-role", service="states.amazonaws.com")
    catch = [{"ErrorEquals": ["PaymentDeclined"], "ResultPath": "$.error", "Next": "Declined"}]
    tasks = {
        "plain": {"Type": "Task", "Resource": function_arn, "Catch": catch, "End": True},
        "integration": {
            "Type": "Task",
            "Resource": "arn:aws:states:::lambda:invoke",
            "Parameters": {"FunctionName": function_arn, "Payload.$": "$"},
            "ResultSelector": {"charged.$": "$.Payload.charged", "by.$": "$.Payload.by"},
            "Catch": catch,
            "End": True,
        },
    }
    sfn = boto3.client("stepfunctions", region_name=REGION)
    machines = {}
    for style, task in tasks.items():
        definition = {
            "StartAt": "Pay",
            "States": {"Pay": task, "Declined": {"Type": "Pass", "End": True}},
        }
        for role_name, role_arn in (("ok", role), ("denied", no_rights)):
            machines[style, role_name] = sfn.create_state_machine(
                name=f"saga-{style}-{role_name}",
                definition=json.dumps(definition),
                roleArn=role_arn,
            )["stateMachineArn"]

    client = admin.client("stepfunctions")
    with enable_iam_authentication():
        for style in tasks:
            paid = run_execution(client, machines[style, "ok"], f"{style}-paid", {"amount": 10})
            assert paid["status"] == "SUCCEEDED", paid
            assert json.loads(paid["output"]) == {"charged": 10, "by": "pay"}

            declined = run_execution(
                client, machines[style, "ok"], f"{style}-declined", {"amount": 500}
            )
            assert declined["status"] == "SUCCEEDED", declined
            output = json.loads(declined["output"])
            assert output["amount"] == 500
            assert output["error"]["Error"] == "PaymentDeclined"
            cause = json.loads(output["error"]["Cause"])
            assert cause["errorMessage"] == "amount 500 is over the limit"

            # The state machine's role is what calls Lambda: without the right, no call.
            refused = run_execution(
                client, machines[style, "denied"], f"{style}-refused", {"amount": 10}
            )
            assert refused["status"] == "FAILED", refused
            assert "not authorized to perform: lambda:InvokeFunction" in refused.get("cause", "")


def pinned_trust(service: str, source_arn: str) -> str:
    """A trust policy for `service` acting for `source_arn` only (confused deputy)."""
    document = trust(service)
    document["Statement"][0]["Condition"] = {
        "ArnLike": {"aws:SourceArn": source_arn},
        "StringEquals": {"aws:SourceAccount": source_arn.split(":")[4]},
    }
    return json.dumps(document)


def test_a_state_machine_role_is_assumed_for_the_state_machine(
    account: Account, runtime: LambdaRuntime
) -> None:
    """Step Functions assumes the role with the state machine's ARN as aws:SourceArn:
    a role pinned to it serves it; pinned to another state machine (its trust changed
    after creation), its tasks cannot call anything."""
    function_arn = account.function("pay", {"app.py": DECLINER})
    invoke = {"Effect": "Allow", "Action": "lambda:InvokeFunction", "Resource": function_arn}
    sfn = boto3.client("stepfunctions", region_name=REGION)
    definition = json.dumps(
        {
            "StartAt": "Pay",
            "States": {"Pay": {"Type": "Task", "Resource": function_arn, "End": True}},
        }
    )
    machines = {}
    for name in ("own", "moved"):
        arn = f"arn:aws:states:{REGION}:123456789012:stateMachine:{name}"
        role = account.role(f"{name}-role", [invoke], service="states.amazonaws.com")
        account.iam.update_assume_role_policy(
            RoleName=f"{name}-role", PolicyDocument=pinned_trust("states.amazonaws.com", arn)
        )
        machines[name] = sfn.create_state_machine(name=name, definition=definition, roleArn=role)[
            "stateMachineArn"
        ]
        assert machines[name] == arn
    other = f"arn:aws:states:{REGION}:123456789012:stateMachine:other"
    account.iam.update_assume_role_policy(
        RoleName="moved-role", PolicyDocument=pinned_trust("states.amazonaws.com", other)
    )

    client = admin_session().client("stepfunctions")
    with enable_iam_authentication():
        paid = run_execution(client, machines["own"], "paid", {"amount": 10})
        refused = run_execution(client, machines["moved"], "refused", {"amount": 10})
    assert paid["status"] == "SUCCEEDED", paid
    assert json.loads(paid["output"]) == {"charged": 10, "by": "pay"}
    assert refused["status"] == "FAILED", refused
    assert (
        f"the role arn:aws:iam::123456789012:role/moved-role cannot be assumed by "
        f"states.amazonaws.com for {machines['moved']}"
    ) in refused.get("cause", "")


def test_an_execution_role_is_assumed_for_the_function(
    account: Account, runtime: LambdaRuntime
) -> None:
    """Lambda assumes the execution role with the function's ARN as aws:SourceArn."""
    for name, pinned_to in (("own", "own"), ("borrowed", "own")):
        function_arn = f"arn:aws:lambda:{REGION}:123456789012:function:{pinned_to}"
        role = account.iam.create_role(
            RoleName=f"{name}-role",
            AssumeRolePolicyDocument=pinned_trust("lambda.amazonaws.com", function_arn),
        )["Role"]["Arn"]
        account.function(name, {"app.py": DECLINER}, role=role)
    own = runtime.invoke("own", {"amount": 1})
    borrowed = runtime.invoke("borrowed", {"amount": 1})
    assert own.error_type is None, own.error_message
    assert own.payload == {"charged": 1, "by": "own"}
    assert borrowed.error_type == "AccessDeniedException"
    assert borrowed.error_message is not None
    assert borrowed.error_message.startswith(
        "The role defined for the function cannot be assumed by Lambda."
    )
    assert f"for arn:aws:lambda:{REGION}:123456789012:function:borrowed" in (borrowed.error_message)


# ------------------------------------------------------------------ nesting, lock


def test_a_handler_can_invoke_another_function_synchronously(
    account: Account, runtime: LambdaRuntime
) -> None:
    account.function(
        "inner",
        {
            "app.py": """
                import os

                def handler(event, context):
                    return {"who": os.environ["WHO"], "got": event}
            """
        },
        environment={"WHO": "inner"},
    )
    account.function(
        "outer",
        {
            "app.py": """
                import json
                import os

                import boto3

                def handler(event, context):
                    response = boto3.client("lambda").invoke(
                        FunctionName="inner", Payload=json.dumps({"from": os.environ["WHO"]})
                    )
                    inner = json.loads(response["Payload"].read())
                    return {"inner": inner, "who_after": os.environ["WHO"]}
            """
        },
        environment={"WHO": "outer"},
    )
    result = runtime.invoke("outer", {})
    assert result.error_type is None, result.error_message
    assert result.payload == {
        "inner": {"who": "inner", "got": {"from": "outer"}},
        "who_after": "outer",
    }


def test_event_invocations_through_the_api_go_to_the_event_dispatcher(
    account: Account, runtime: LambdaRuntime
) -> None:
    arn = account.function("async-target", {"app.py": DECLINER})
    dispatched: list[tuple[str, Any]] = []
    runtime.event_dispatcher = lambda function, event: dispatched.append((function, event))
    response = account.lambda_.invoke(
        FunctionName="async-target", InvocationType="Event", Payload=json.dumps({"amount": 1})
    )
    assert response["StatusCode"] == 202
    assert dispatched == [(arn, {"amount": 1})]


def test_moto_lock_is_reentrant_and_can_be_set_aside() -> None:
    lock = MotoLock()
    entered = threading.Event()

    def other() -> None:
        with lock:
            entered.set()

    with lock, lock:
        assert lock.held()
        thread = threading.Thread(target=other)
        thread.start()
        assert not entered.wait(0.1)
        with lock.released():
            assert not lock.held()
            assert entered.wait(2)
        thread.join(2)
        assert lock.held()
    assert not lock.held()


def test_moto_lock_serialises_concurrent_conditional_writes(account: Account) -> None:
    account.table("seats")
    install_moto_lock()
    try:
        barrier = threading.Barrier(8)
        outcomes: list[str] = []

        def claim(n: int) -> None:
            client = boto3.client("dynamodb", region_name=REGION)
            barrier.wait()
            try:
                client.put_item(
                    TableName="seats",
                    Item={"pk": {"S": "seat-1"}, "owner": {"S": str(n)}},
                    ConditionExpression="attribute_not_exists(pk)",
                )
                outcomes.append("won")
            except ClientError as exc:
                outcomes.append(exc.response["Error"]["Code"])

        threads = [threading.Thread(target=claim, args=(n,)) for n in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(10)
        assert sorted(outcomes) == ["ConditionalCheckFailedException"] * 7 + ["won"]
        assert not MOTO_LOCK.held()
    finally:
        uninstall_moto_lock()


def test_invocation_result_is_the_agreed_interface() -> None:
    result = InvocationResult(
        payload=None, error_type=None, error_message=None, duration_ms=1.0, logs=""
    )
    with pytest.raises(AttributeError):
        result.payload = 1  # type: ignore[misc]


# ------------------------------------------------------------------ handler time
# A handler's sleeps are virtual and its timeout counts its own time (CPU, sleeps,
# nested invocations), never the wall clock. Real durations are only ever bounded from
# above, generously, to show that a long sleep was not slept.

SLEEPER = """
    import time

    def handler(event, context):
        before = context.get_remaining_time_in_millis()
        for _ in range(event.get("times", 1)):
            time.sleep(event["sleep"])
        return {"before": before, "after": context.get_remaining_time_in_millis()}
"""


def test_a_long_sleep_takes_no_real_time_and_moves_the_virtual_clock(account: Account) -> None:
    account.function("sleeper", {"app.py": SLEEPER}, timeout=900)
    clock = VirtualClock(start=1_000.0)
    with LambdaRuntime(clock=clock) as runtime:
        started = time.monotonic()
        result = runtime.invoke("sleeper", {"sleep": 600})
        real = time.monotonic() - started
    assert result.error_type is None, result.error_message
    assert clock.now() == 1_600.0
    assert real < 60  # a real sleep would have taken 600 s
    payload = result.payload
    assert 899_000 < payload["before"] <= 900_000
    # The context agrees: 600 s of the 900 s are gone (and a few ms of CPU).
    assert 600_000 <= payload["before"] - payload["after"] < 601_000
    assert result.duration_ms >= 600_000
    assert "Duration: 6000" in result.logs  # the REPORT line counts the sleep


def test_sleeping_past_the_timeout_is_lambdas_timeout_at_the_deadline(account: Account) -> None:
    account.function("poller", {"app.py": SLEEPER}, timeout=60)
    clock = VirtualClock(start=1_000.0)
    with LambdaRuntime(clock=clock) as runtime:
        started = time.monotonic()
        result = runtime.invoke("poller", {"sleep": 5, "times": 1_000})
        real = time.monotonic() - started
    assert result.error_type == "Sandbox.Timedout"
    assert result.error_message is not None
    assert result.error_message.endswith("Task timed out after 60.00 seconds")
    assert "Task timed out after 60.00 seconds" in result.logs
    # The clock stops where Lambda stops the function: at its deadline.
    assert 59.0 < clock.now() - 1_000.0 <= 60.0
    assert real < 30


def test_a_busy_loop_times_out_on_its_cpu_time_and_stops(
    account: Account, runtime: LambdaRuntime
) -> None:
    account.function(
        "spinner",
        {
            "app.py": """
                SPINS = []

                def handler(event, context):
                    if event.get("count"):
                        return len(SPINS)
                    while True:
                        SPINS.append(1)
                        del SPINS[1:]
            """
        },
        timeout=1,
    )
    result = runtime.invoke("spinner", {})
    assert result.error_type == "Sandbox.Timedout"
    assert result.error_message is not None
    assert result.error_message.endswith("Task timed out after 1.00 seconds")
    # The loop's thread was stopped, not left spinning: no worker thread of it is left.
    deadline = time.monotonic() + 10
    while any(t.name.startswith("lambda:spinner:") for t in threading.enumerate()):
        assert time.monotonic() < deadline, "the timed-out busy loop is still running"
        time.sleep(0.01)


def test_collecting_the_sandboxs_garbage_is_not_the_handlers_time(
    account: Account, aws: None
) -> None:
    # A full collection walks the whole process's heap (moto, the test, every other
    # function's state): on the thread that happens to trigger it, it is CPU time the
    # function's own code never used, and must not time the function out, even while
    # one collection alone outlasts its timeout (here a function second is 50 ms of CPU).
    account.function(
        "collector",
        {
            "app.py": """
                import gc
                import time

                def handler(event, context):
                    started = time.thread_time()
                    while time.thread_time() - started < 1.0:
                        gc.collect()
                    return context.get_remaining_time_in_millis()
            """
        },
        timeout=1,
    )
    heap = [[i] for i in range(1_000_000)]  # each collection: well over 50 ms of CPU
    with LambdaRuntime(timeout_scale=0.05) as runtime:
        result = runtime.invoke("collector", {})
    assert len(heap) == 1_000_000
    assert result.error_type is None, result.error_message
    assert result.payload > 0


def test_botocore_retry_sleeps_are_virtual(
    account: Account, monkeypatch: pytest.MonkeyPatch
) -> None:
    from botocore.retries.standard import ExponentialBackoff
    from moto.dynamodb.exceptions import DynamodbException
    from moto.dynamodb.models import DynamoDBBackend

    # botocore's standard retry mode waits rand * min(2 ** (attempt - 1), 20) seconds
    # after a throttle: without the randomness, 9 retries wait 1+2+4+8+16+4*20 = 111 s.
    monkeypatch.setattr(ExponentialBackoff, "__init__", _no_jitter(ExponentialBackoff.__init__))
    original_put = DynamoDBBackend.put_item
    attempts: list[str] = []

    def throttled_put(backend: Any, table_name: str, item: Any, *args: Any, **kw: Any) -> Any:
        attempts.append(table_name)
        if len(attempts) < 10:
            raise DynamodbException(
                "com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException",
                "The level of configured provisioned throughput for the table was exceeded.",
            )
        return original_put(backend, table_name, item, *args, **kw)

    monkeypatch.setattr(DynamoDBBackend, "put_item", throttled_put)
    table_arn = account.table("orders")
    account.function(
        "persistent",
        {
            "app.py": """
                import boto3
                from botocore.config import Config

                def handler(event, context):
                    config = Config(retries={"mode": "standard", "max_attempts": 10})
                    boto3.client("dynamodb", config=config).put_item(
                        TableName="orders", Item={"pk": {"S": "o-1"}}
                    )
                    return "written"
            """
        },
        timeout=300,
        statements=[{"Effect": "Allow", "Action": "dynamodb:PutItem", "Resource": table_arn}],
    )
    clock = VirtualClock(start=1_000.0)
    with LambdaRuntime(clock=clock) as runtime:
        started = time.monotonic()
        result = runtime.invoke("persistent", {})
        real = time.monotonic() - started
    assert result.error_type is None, result.error_message
    assert result.payload == "written"
    assert len(attempts) == 10
    assert account.keys("orders") == {"o-1"}
    assert clock.now() - 1_000.0 == pytest.approx(111.0)
    assert real < 60


def _no_jitter(init: Any) -> Any:
    def no_jitter(self: Any, *args: Any, **kwargs: Any) -> None:
        init(self, *args, **kwargs)
        self._random = lambda: 1.0

    return no_jitter


def test_sleeps_outside_invocations_stay_real_and_uninstall_restores_time_sleep(
    aws: None,
) -> None:
    import botocore.retries.standard as standard

    import eventcraft.publisher as publisher

    real_sleep = time.sleep
    captured = standard.RetryHandler.__init__.__defaults__
    # Both captured time.sleep when they were defined: botocore's standard retries as
    # a default argument, eventcraft's Publisher as a keyword-only default.
    assert publisher.Publisher.__init__.__kwdefaults__["sleep"] is real_sleep
    with LambdaRuntime():
        assert time.sleep is not real_sleep
        assert real_sleep not in (standard.RetryHandler.__init__.__defaults__ or ())
        assert publisher.Publisher.__init__.__kwdefaults__["sleep"] is time.sleep
        started = time.monotonic()
        time.sleep(0.05)  # this thread runs no invocation: a real sleep
        assert time.monotonic() - started >= 0.05
    assert time.sleep is real_sleep
    assert standard.RetryHandler.__init__.__defaults__ == captured
    assert publisher.Publisher.__init__.__kwdefaults__["sleep"] is real_sleep


def test_a_blocked_handler_is_stopped_by_the_backstop_not_as_lambdas_timeout(
    account: Account,
) -> None:
    account.function(
        "stuck",
        {
            "app.py": """
                import threading

                NEVER = threading.Event()

                def handler(event, context):
                    NEVER.wait(5)  # blocked: no CPU, no sleep
                    return "woke"
            """
        },
        timeout=900,
    )
    with LambdaRuntime(wall_clock_backstop=0.5) as runtime:
        result = runtime.invoke("stuck", {})
    assert result.error_type == "Sandbox.Backstop"
    assert result.error_message is not None
    assert "the sandbox's wall-clock backstop stopped stuck" in result.error_message
    assert "not Lambda's timeout" in result.error_message
    assert "Task timed out" not in result.logs


def test_synchronous_invoke_passes_while_the_machine_is_busy(
    account: Account, runtime: LambdaRuntime
) -> None:
    # Threads burning CPU in this process: the handlers get a fraction of the
    # interpreter, so their wall-clock time stretches well past their timeouts
    # (1.5 real seconds at SCALE); their own CPU time does not.
    stop = threading.Event()

    def burn() -> None:
        while not stop.is_set():
            sum(range(10_000))

    burners = [threading.Thread(target=burn, daemon=True) for _ in range(6)]
    for burner in burners:
        burner.start()
    try:
        test_a_handler_can_invoke_another_function_synchronously(account, runtime)
    finally:
        stop.set()
        for burner in burners:
            burner.join(5)
