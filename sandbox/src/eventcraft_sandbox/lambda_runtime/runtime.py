"""`LambdaRuntime`: functions deployed in moto run in-process, like Lambda (see
the package docstring)."""

from __future__ import annotations

import functools
import hashlib
import importlib
import importlib.abc
import importlib.machinery
import json
import logging
import os
import shutil
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Literal

from eventcraft_sandbox.lambda_runtime.concurrency import (
    THROTTLED_CODE,
    THROTTLED_MESSAGE,
    Concurrency,
)
from eventcraft_sandbox.lambda_runtime.containers import (
    Container,
    extract,
    install_import_guard,
    layer_python_dirs,
    shared_with_host,
    swap_in,
    swap_out,
    top_level_names,
    uninstall_import_guard,
)
from eventcraft_sandbox.lambda_runtime.credentials import assume_role_as_service
from eventcraft_sandbox.lambda_runtime.function_spec import FunctionSpec
from eventcraft_sandbox.lambda_runtime.handler_time import install_handler_time
from eventcraft_sandbox.lambda_runtime.iam import install_iam_resources, uninstall_iam_resources
from eventcraft_sandbox.lambda_runtime.interface import (
    AdminIdentity,
    Clock,
    EventDispatcher,
    FunctionNotFoundError,
    InvocationResult,
    LambdaRuntimeError,
    RoleNotAssumableError,
    SessionFactory,
)
from eventcraft_sandbox.lambda_runtime.interleaving import BATON, Chain
from eventcraft_sandbox.lambda_runtime.invocation import INIT_TIMEOUT_SECONDS, Invocation, Outcome
from eventcraft_sandbox.lambda_runtime.log_capture import LOG_ROUTER, iso_timestamp
from eventcraft_sandbox.lambda_runtime.moto_hooks import (
    INSTALL_GUARD,
    MOTO_LOCK,
    SFN_CLIENT_MODULES,
    SFN_EXECUTION,
    SFN_LAMBDA_TASK,
    Patches,
    Registry,
    api_entry,
    install_moto_lock,
    moto_invoke_lambda,
    require_moto_hooks,
    sfn_client_factory,
    sfn_execution_details,
    sfn_lambda_task_error,
    uninstall_moto_lock,
)
from eventcraft_sandbox.lambda_runtime.thread_state import STATE

log = logging.getLogger(__name__)

Stop = Literal["timeout", "backstop"]  # why the runtime stopped an invocation


class _SizeUnchecked:
    """`sys` for moto's Lambda responses, whose only use is its response size check."""

    @staticmethod
    def getsizeof(value: object, default: int = 0) -> int:
        return 0

    def __getattr__(self, name: str) -> Any:
        return getattr(sys, name)


_HOST_ENV_KEPT = frozenset(
    {"PATH", "HOME", "TMPDIR", "TEMP", "TMP", "LANG", "LC_ALL", "LC_CTYPE", "SYSTEMROOT",
     "PYTHONHASHSEED"}
)  # fmt: skip
_WATCH_SECONDS = 0.01  # how often a waiting caller looks at the handler's elapsed time
# The largest response Lambda returns (its error message names this many bytes: 6 MB
# and 100 bytes). "Response payload size (N bytes) exceeded maximum allowed payload
# size (6291556 bytes)." with errorType Function.ResponseSizeTooLarge, as reported by
# Lambda to callers (e.g. umihico/pythonista-chromeless#11, DataBiosphere/azul#7466).
MAX_RESPONSE_BYTES = 6_291_556


class LambdaRuntime:
    """Runs functions deployed in moto in-process, like Lambda (see the package docstring).

    - `account` / `region`: where a bare function name is looked up (default: the
      account of `admin` (its ARN), else of `session_factory()`'s caller identity,
      else moto's default account; the region of that session, else us-east-1).
    - `clock`: the sandbox's clock (default: none). A handler's sleeps move it forward
      when it has `advance(seconds)` (a `VirtualClock`); see `handler_time`. A
      handler's clock reads it (none: the real clock); see `handler_clock`.
    - `timeout_scale`: CPU seconds of handler code per function second (default 1.0;
      tests use less, so that a busy loop times out sooner). Sleeps are virtual and
      count in function seconds as they are. Messages and the context still speak in
      function seconds.
    - `wall_clock_backstop`: real seconds after which a handler that neither uses CPU
      nor sleeps (it is blocked: a deadlock) is stopped, reported as
      "Sandbox.Backstop", not as Lambda's timeout (default None: 60 + 4 x the phase's
      timeout x `timeout_scale`).
    - `event_dispatcher(function_arn, event)`: where InvocationType=Event requests
      made through moto's Invoke API go (the delivery part's async queue, which
      retries); default None: run inline, the result only logged. The attribute
      `durable_runner(function_arn, event)` is where a synchronous Invoke of a durable
      function goes (`delivery.durable.run_sync`, set as `dispatch_event` is).
    - `write_logs`: also write each invocation's log to its function's CloudWatch
      log group in moto, when the group exists (default True).
    - `work_dir`: where code is extracted (default: a temp dir removed by `close()`).
    """

    def __init__(
        self,
        *,
        account: str | None = None,
        region: str | None = None,
        admin: AdminIdentity | None = None,
        session_factory: SessionFactory | None = None,
        clock: Clock | None = None,
        timeout_scale: float = 1.0,
        wall_clock_backstop: float | None = None,
        event_dispatcher: EventDispatcher | None = None,
        write_logs: bool = True,
        work_dir: str | Path | None = None,
    ) -> None:
        if timeout_scale <= 0:
            raise ValueError(f"timeout_scale: {timeout_scale} must be > 0")
        if wall_clock_backstop is not None and wall_clock_backstop <= 0:
            raise ValueError(
                f"wall_clock_backstop: {wall_clock_backstop} must be > 0 real seconds (or None)"
            )
        self._account = account
        self._region = region
        self._admin = admin
        self._session_factory = session_factory
        self.clock = clock
        self.timeout_scale = timeout_scale
        self.wall_clock_backstop = wall_clock_backstop
        self.event_dispatcher = event_dispatcher
        # A synchronous Invoke of a durable function: (function ARN, event) -> result
        # (`Delivery.durable.run_sync`); None: the handler gets the plain event.
        self.durable_runner: Callable[[str, Any], InvocationResult] | None = None
        self.write_logs = write_logs
        self._owns_work_dir = work_dir is None
        self.work_dir = Path(work_dir or tempfile.mkdtemp(prefix="sandbox-lambda-"))
        self._extract_lock = threading.Lock()
        self._extracted: dict[str, Path] = {}
        self._pool_lock = threading.Lock()
        self._idle: dict[str, list[Container]] = {}
        self._service_credentials: dict[tuple[str, str, str], dict[str, str]] = {}
        # Step Functions task clients by (role, state machine, region, service): creating a botocore
        # client loads its service model (~0.1 s), too slow for every task.
        self._sfn_clients: dict[tuple[str, str, str, str], Any] = {}
        self._patches = Patches()
        # Invocations in flight per function, and what throttles them.
        self.concurrency = Concurrency()

    # ------------------------------------------------------------ defaults

    @functools.cached_property
    def default_region(self) -> str:
        if self._region:
            return self._region
        if self._session_factory is not None:
            region = getattr(self._session_factory(), "region_name", None)
            if region:
                return str(region)
        return "us-east-1"

    @functools.cached_property
    def default_account(self) -> str:
        if self._account:
            return self._account
        if self._admin is not None:
            return self._admin.arn.split(":")[4]
        if self._session_factory is not None:
            sts = self._session_factory().client("sts", region_name=self.default_region)
            return str(sts.get_caller_identity()["Account"])
        from moto.core import DEFAULT_ACCOUNT_ID

        return str(DEFAULT_ACCOUNT_ID)

    # -------------------------------------------------------------- invoke

    def invoke(
        self,
        function: str,
        payload: Any,
        *,
        invocation_type: Literal["RequestResponse", "Event"] = "RequestResponse",
    ) -> InvocationResult:
        """Run `function` (name, `name:qualifier`, ARN) with `payload` (JSON-compatible).

        Blocks until the invocation ends (a timeout included). `invocation_type` is
        recorded only: retries and destinations of async invocations are the
        caller's. Raises `FunctionNotFoundError` for an unknown function, ValueError
        for a payload that is not JSON, and LambdaRuntimeError if the runtime is not
        installed (without `install()` nothing captures logs, guards imports, freezes
        timed-out invocations or fixes moto's IAM checks).
        """
        if not self.installed:
            raise LambdaRuntimeError(
                "this LambdaRuntime is not installed: call install() first "
                "(or use `with LambdaRuntime(...) as runtime:`)"
            )
        try:
            event = json.loads(json.dumps(payload))
        except (TypeError, ValueError) as exc:
            raise ValueError(f"payload is not JSON-compatible: {exc}") from exc
        spec, invoked_arn = self.function_spec(function)
        return self._invoke(spec, event, invocation_type, invoked_arn).result

    def function_spec(self, function: str) -> tuple[FunctionSpec, str]:
        """The function's spec from moto, and the ARN it is invoked by."""
        from moto.awslambda.utils import get_backend

        account, region, name, qualifier = self.default_account, self.default_region, function, None
        if function.startswith("arn:"):
            parts = function.split(":")
            if len(parts) < 7 or parts[2] != "lambda" or parts[5] != "function":
                raise FunctionNotFoundError(f"{function!r} is not a Lambda function ARN")
            region, account, name = parts[3], parts[4], parts[6]
            qualifier = parts[7] if len(parts) > 7 else None
        elif ":" in function:
            name, qualifier = function.split(":", 1)
        with MOTO_LOCK:
            try:
                fn = get_backend(account, region).get_function(name, qualifier)
            except Exception as exc:
                raise FunctionNotFoundError(
                    f"Function not found: {function} (account {account}, region {region})"
                ) from exc
            spec = FunctionSpec.from_moto(fn)
        invoked = spec.arn if qualifier is None else f"{spec.arn}:{qualifier}"
        return spec, invoked

    def invoke_together(
        self, calls: Sequence[tuple[str, Any, Literal["RequestResponse", "Event"]]]
    ) -> list[InvocationResult | Exception]:
        """Run `calls` (function, payload, invocation type) as invocations in flight
        together: each on a thread of its own, started in order (each takes its
        concurrency slot, or is throttled, and waits for its turn before the next
        starts), then run in turns (`interleaving`). Their results, or the exception
        `invoke` raised, in the order of `calls`."""
        results: list[InvocationResult | Exception] = [LambdaRuntimeError("not run") for _ in calls]
        threads = []

        def run(index: int, arrived: threading.Event) -> None:
            function, payload, invocation_type = calls[index]
            with BATON.gathered(arrived):
                try:
                    results[index] = self.invoke(function, payload, invocation_type=invocation_type)
                except Exception as exc:  # the caller's to handle, as from invoke()
                    results[index] = exc

        with BATON.holding():
            for index, (function, _, _) in enumerate(calls):
                arrived = threading.Event()
                thread = threading.Thread(
                    target=run,
                    args=(index, arrived),
                    name=f"together:{function.rsplit(':', 1)[-1]}:{index}",
                    daemon=True,
                )
                thread.start()
                arrived.wait()
                threads.append(thread)
        for thread in threads:
            thread.join()
        return results

    def in_flight(self, function: str) -> int:
        """Invocations of `function` (name or ARN) in flight now."""
        return self.concurrency.in_flight(function)

    def _invoke(
        self, spec: FunctionSpec, event: Any, invocation_type: str, invoked_arn: str
    ) -> Outcome:
        unsupported = self._unsupported(spec)
        if unsupported is not None:
            return unsupported
        reason = self.concurrency.enter(spec)
        if reason is not None:
            return Outcome(
                InvocationResult(None, THROTTLED_CODE, THROTTLED_MESSAGE, 0.0, "", 429),
                str(uuid.uuid4()),
                reason=reason,
            )
        try:
            return self._invoke_in_turn(spec, event, invocation_type, invoked_arn)
        finally:
            self.concurrency.leave(spec)

    def _invoke_in_turn(
        self, spec: FunctionSpec, event: Any, invocation_type: str, invoked_arn: str
    ) -> Outcome:
        """Run the invocation in its chain's turns: a nested one in its parent's chain,
        a top-level one in a chain of its own (`interleaving`)."""
        parent = STATE.invocation
        chain = parent.chain if parent is not None else Chain()
        if parent is None:
            BATON.join(chain)
        try:
            try:
                container = self._checkout(spec)
            except RoleNotAssumableError as exc:
                message = f"The role defined for the function cannot be assumed by Lambda. ({exc})"
                return Outcome(
                    InvocationResult(None, "AccessDeniedException", message, 0.0, ""),
                    str(uuid.uuid4()),
                )
            invocation = Invocation(
                self, container, event, invocation_type, invoked_arn, chain=chain
            )
            try:
                stopped = self._run(invocation)
            except BaseException:
                self._checkin(container, discard=True)
                raise
        finally:
            if parent is None:
                BATON.leave(chain)
        return self._finish(invocation, stopped)

    def _unsupported(self, spec: FunctionSpec) -> Outcome | None:
        problem = None
        if spec.package_type != "Zip":
            problem = f"package type {spec.package_type} (only zip packages run in the sandbox)"
        elif not spec.runtime.startswith("python3"):
            problem = f"runtime {spec.runtime or 'None'} (only python3.x runs in the sandbox)"
        elif not spec.code:
            problem = "no code (moto holds no zip for it)"
        if problem is None:
            return None
        message = f"{spec.name}: {problem}"
        return Outcome(
            InvocationResult(None, "Sandbox.Unsupported", message, 0.0, ""), str(uuid.uuid4())
        )

    def _run(self, invocation: Invocation) -> Stop | None:
        """Run on a worker thread and wait; why it was stopped, if it was."""
        environ = self._environment(invocation)
        parent = STATE.invocation  # a handler invoking synchronously waits for this one
        swap_in(invocation, environ)
        if parent is not None:
            parent.time.waiting_on(invocation.time)
        try:
            worker = threading.Thread(
                target=invocation.run,
                name=f"lambda:{invocation.spec.name}:{invocation.request_id[:8]}",
                daemon=True,
            )
            worker.start()
            stopped = self._watch(invocation)
            if stopped is not None:
                invocation.freeze()
                # Its worker may be parked waiting for its turn: act on the chain's.
                BATON.reclaim(invocation.chain)
        finally:
            if parent is not None:
                parent.time.waiting_on(None)
            swap_out(invocation)
        return stopped

    def _watch(self, invocation: Invocation) -> Stop | None:
        """Wait for the worker; stop it when its elapsed time reaches the phase's limit
        (init, then handler: `handler_time`), or at the wall-clock backstop."""
        clock = invocation.time
        phase_timeout = max(INIT_TIMEOUT_SECONDS, invocation.spec.timeout)
        backstop = self.wall_clock_backstop or 60.0 + 4 * phase_timeout * self.timeout_scale
        while not invocation.done.wait(_WATCH_SECONDS):
            if clock.stopped.is_set():
                return "timeout"
            if clock.limit and clock.elapsed() >= clock.limit:
                return "timeout"
            if clock.real_seconds() > backstop and not invocation.chain.parked:
                return "backstop"
        # Finished: past its deadline (or unwound by a sleep that outlasted it), Lambda
        # would have stopped it before it returned.
        if clock.stopped.is_set() or (clock.limit and clock.elapsed() > clock.limit):
            return "timeout"
        return None

    def _finish(self, invocation: Invocation, stopped: Stop | None) -> Outcome:
        container, spec = invocation.container, invocation.spec
        self._checkin(container, discard=invocation.discard)
        error_type, message = invocation.error_type, invocation.error_message
        payload = invocation.payload
        duration_ms = invocation.duration_ms
        if stopped == "timeout":
            error_type = "Sandbox.Timedout"
            message = (
                f"RequestId: {invocation.request_id} Error: Task timed out after "
                f"{spec.timeout:.2f} seconds"
            )
            payload, duration_ms = None, spec.timeout * 1000
            invocation.write_log(
                f"{iso_timestamp(time.time())} {invocation.request_id} Task timed out after "
                f"{spec.timeout:.2f} seconds\n"
            )
        elif stopped == "backstop":
            clock = invocation.time
            error_type = "Sandbox.Backstop"
            message = (
                f"RequestId: {invocation.request_id} Error: the sandbox's wall-clock backstop "
                f"stopped {spec.name} after {clock.real_seconds():.0f} real seconds, in which "
                f"its code used {clock.cpu_seconds():.2f} CPU seconds and slept "
                f"{clock.slept:.2f} virtual seconds of its {spec.timeout:.2f}-second timeout: "
                "it is blocked (a deadlock?), not out of time. This is not Lambda's timeout "
                "(LambdaRuntime(wall_clock_backstop=...) sets the backstop)."
            )
            payload = None
            invocation.write_log(f"{iso_timestamp(time.time())} {message}\n")
        elif error_type is None and invocation.payload_bytes > MAX_RESPONSE_BYTES:
            error_type = "Function.ResponseSizeTooLarge"
            message = (
                f"Response payload size ({invocation.payload_bytes} bytes) exceeded maximum "
                f"allowed payload size ({MAX_RESPONSE_BYTES} bytes)."
            )
            payload = None
            invocation.write_log(f"[ERROR] {error_type}: {message}\n")
        logs = self._frame_log(invocation, duration_ms)
        if self.write_logs:
            self._write_cloudwatch(container, logs)
        return Outcome(
            InvocationResult(payload, error_type, message, duration_ms, logs),
            invocation.request_id,
            tuple(invocation.error_trace) if error_type == invocation.error_type else (),
        )

    @staticmethod
    def _frame_log(invocation: Invocation, duration_ms: float) -> str:
        spec, rid = invocation.spec, invocation.request_id
        body = invocation.log_text
        if body and not body.endswith("\n"):
            body += "\n"
        report = (
            f"REPORT RequestId: {rid}\tDuration: {duration_ms:.2f} ms\t"
            f"Billed Duration: {max(1, int(duration_ms + 0.999))} ms\t"
            f"Memory Size: {spec.memory_mb} MB\tMax Memory Used: {spec.memory_mb} MB"
        )
        if invocation.cold and invocation.init_ms is not None:
            report += f"\tInit Duration: {invocation.init_ms:.2f} ms"
        runtime = spec.runtime.replace("python", "python:")
        init = f"INIT_START Runtime Version: {runtime}\n" if invocation.cold else ""
        return (
            f"{init}START RequestId: {rid} Version: {spec.version}\n{body}"
            f"END RequestId: {rid}\n{report}\n"
        )

    def _environment(self, invocation: Invocation) -> dict[str, str]:
        spec, container = invocation.spec, invocation.container
        host = os.environ
        environ = {k: v for k, v in host.items() if k in _HOST_ENV_KEPT or k.startswith("MOTO_")}
        environ.setdefault("LANG", "en_US.UTF-8")
        environ.update(spec.environment)
        credentials = container.credentials
        trace_root = f"1-{int(time.time()):08x}-{uuid.uuid4().hex[:24]}"
        environ.update(
            {
                "_HANDLER": spec.handler,
                "_X_AMZN_TRACE_ID": f"Root={trace_root};Parent={uuid.uuid4().hex[:16]};Sampled=0",
                "AWS_EXECUTION_ENV": f"AWS_Lambda_{spec.runtime}",
                "AWS_LAMBDA_FUNCTION_NAME": spec.name,
                "AWS_LAMBDA_FUNCTION_VERSION": spec.version,
                "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(spec.memory_mb),
                "AWS_LAMBDA_LOG_GROUP_NAME": spec.log_group,
                "AWS_LAMBDA_LOG_STREAM_NAME": container.log_stream,
                "AWS_LAMBDA_INITIALIZATION_TYPE": "on-demand",
                "AWS_REGION": spec.region,
                "AWS_DEFAULT_REGION": spec.region,
                "AWS_ACCESS_KEY_ID": credentials["AccessKeyId"],
                "AWS_SECRET_ACCESS_KEY": credentials["SecretAccessKey"],
                "AWS_SESSION_TOKEN": credentials["SessionToken"],
                # moto does not route botocore's account-based endpoints (shared notes).
                "AWS_ACCOUNT_ID_ENDPOINT_MODE": "disabled",
                "LAMBDA_TASK_ROOT": str(container.code_dir),
                "LAMBDA_RUNTIME_DIR": sys.prefix,
            }
        )
        return environ

    # ---------------------------------------------------------- containers

    def _checkout(self, spec: FunctionSpec) -> Container:
        key = spec.key
        with self._pool_lock:
            idle = self._idle.get(key, [])
            while idle:
                container = idle.pop()
                if not container.busy:
                    container.busy = True
                    container.invocations += 1
                    return container
        container = self._new_container(spec)
        container.busy = True
        container.invocations += 1
        return container

    def _checkin(self, container: Container, *, discard: bool) -> None:
        with self._pool_lock:
            container.busy = False
            if not discard:
                self._idle.setdefault(container.spec.key, []).append(container)

    def _new_container(self, spec: FunctionSpec) -> Container:
        code_dir = self._unpacked(spec.code_sha256, spec.code, "code")
        layer_dirs: list[Path] = []
        own = set(top_level_names(code_dir))
        shared: set[str] = set()
        for layer in spec.layers:
            for directory in layer_python_dirs(self._unpacked(layer.sha256, layer.code, "layers")):
                layer_dirs.append(directory)
                # The host's identical third-party packages are shared (import cost);
                # everything else of the layer is isolated like the function's code.
                from_host = shared_with_host(directory)
                shared |= from_host
                own |= top_level_names(directory) - from_host
        # Lambda assumes the execution role for the function: aws:SourceArn is its ARN.
        credentials = assume_role_as_service(
            spec.role,
            "lambda.amazonaws.com",
            session_name=spec.name,
            region=spec.region,
            source_arn=spec.arn,
        )
        return Container(
            spec, code_dir, layer_dirs, frozenset(own), credentials, shared_names=frozenset(shared)
        )

    def _unpacked(self, sha256: str, code: bytes, kind: str) -> Path:
        digest = hashlib.sha256(f"{sha256}:{len(code)}".encode()).hexdigest()[:24]
        with self._extract_lock:
            cached = self._extracted.get(f"{kind}:{digest}")
            if cached is not None:
                return cached
            target = self.work_dir / kind / digest
            target.parent.mkdir(parents=True, exist_ok=True)
            if not target.exists():
                extract(code, target)
            importlib.invalidate_caches()
            self._extracted[f"{kind}:{digest}"] = target
            return target

    def warm_containers(self, function: str) -> int:
        """How many idle execution environments the function's current version has."""
        spec, _ = self.function_spec(function)
        with self._pool_lock:
            return len(self._idle.get(spec.key, []))

    # -------------------------------------------------------------- logs

    def _write_cloudwatch(self, container: Container, logs: str) -> None:
        from moto.logs.models import logs_backends

        spec = container.spec
        now = int(time.time() * 1000)
        events = [{"timestamp": now, "message": line} for line in logs.splitlines() if line]
        try:
            with MOTO_LOCK:
                backend = logs_backends[spec.account][spec.region]
                if spec.log_group not in backend.groups or not events:
                    return
                if not container.log_stream_created:
                    backend.create_log_stream(spec.log_group, container.log_stream)
                    container.log_stream_created = True
                backend.put_log_events(spec.log_group, container.log_stream, events)
        except Exception:  # logs are a courtesy: never fail an invocation over them
            log.warning("could not write %s's log to CloudWatch", spec.name, exc_info=True)

    # ------------------------------------------------------ service roles

    def service_credentials(
        self, role_arn: str, service: str, *, source_arn: str | None = None
    ) -> dict[str, str]:
        """Credentials of `role_arn` as `service` assumes it on behalf of `source_arn`
        (e.g. the state machine: the trust policy's aws:SourceArn), cached per role
        and resource."""
        key = (str(role_arn), service, source_arn or "")
        with self._pool_lock:
            cached = self._service_credentials.get(key)
        if cached is not None:
            return cached
        name = service.split(".", 1)[0]
        credentials = assume_role_as_service(
            role_arn, service, session_name=f"{name}-{uuid.uuid4().hex[:12]}",
            region=self.default_region, source_arn=source_arn,
        )  # fmt: skip
        with self._pool_lock:
            return self._service_credentials.setdefault(key, credentials)

    # ----------------------------------------------------------- install

    def install(self) -> LambdaRuntime:
        """Make moto run functions through this runtime (see the package docstring).

        Raises MotoHookError if moto's hooked internals changed, and
        LambdaRuntimeError if another runtime is installed.
        """
        with INSTALL_GUARD:
            if Registry.runtime is self:
                return self
            if Registry.runtime is not None:
                raise LambdaRuntimeError(
                    "another LambdaRuntime is installed (moto's hook is process-wide): "
                    "uninstall it first"
                )
            require_moto_hooks()
            install_moto_lock()
            install_iam_resources()
            try:
                self._install_hooks()
            except BaseException:
                self._patches.undo()
                uninstall_iam_resources()
                uninstall_moto_lock()
                raise
            Registry.runtime = self
        return self

    def _install_hooks(self) -> None:
        from moto.awslambda import responses as lambda_responses
        from moto.awslambda.models import LambdaFunction
        from moto.awslambda.responses import LambdaResponse

        self._patches.set(LambdaFunction, "_invoke_lambda", moto_invoke_lambda)
        self._patches.set(
            LambdaResponse, "invoke", api_entry(LambdaResponse.invoke, "RequestResponse")
        )
        self._patches.set(
            LambdaResponse, "invoke_async", api_entry(LambdaResponse.invoke_async, "Event")
        )
        # moto refuses responses whose sys.getsizeof (object overhead included) is over
        # 6,000,000, where Lambda allows 6,291,556 bytes: the runtime enforces Lambda's
        # limit itself (MAX_RESPONSE_BYTES), so moto's check sees no size.
        self._patches.set(lambda_responses, "sys", _SizeUnchecked())
        for name in SFN_CLIENT_MODULES:
            module = importlib.import_module(name)
            original = module.boto_client_for
            self._patches.set(module, "boto_client_for", sfn_client_factory(original))
        execution = importlib.import_module(SFN_EXECUTION).Execution
        self._patches.set(
            execution,
            "_get_start_aws_execution_details",
            sfn_execution_details(execution._get_start_aws_execution_details),
        )
        lambda_task = importlib.import_module(SFN_LAMBDA_TASK).StateTaskLambda
        self._patches.set(
            lambda_task, "_from_error", sfn_lambda_task_error(lambda_task._from_error)
        )
        install_handler_time(self._patches)
        root = logging.getLogger()
        if LOG_ROUTER not in root.handlers:
            root.addHandler(LOG_ROUTER)
        install_import_guard()

    def uninstall(self) -> None:
        """Undo `install()` (idempotent)."""
        with INSTALL_GUARD:
            if Registry.runtime is not self:
                return
            self._patches.undo()
            logging.getLogger().removeHandler(LOG_ROUTER)
            uninstall_import_guard()
            uninstall_iam_resources()
            uninstall_moto_lock()
            Registry.runtime = None

    @property
    def installed(self) -> bool:
        return Registry.runtime is self

    def close(self) -> None:
        """Uninstall, forget every container and remove the extracted code."""
        self.uninstall()
        with self._pool_lock:
            self._idle.clear()
            self._service_credentials.clear()
            self._sfn_clients.clear()
        with self._extract_lock:
            self._extracted.clear()
            if self._owns_work_dir:
                shutil.rmtree(self.work_dir, ignore_errors=True)

    def __enter__(self) -> LambdaRuntime:
        return self.install()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
