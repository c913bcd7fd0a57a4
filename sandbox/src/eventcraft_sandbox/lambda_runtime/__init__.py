"""The sandbox's Lambda runtime: functions deployed in moto, run in-process like Lambda.

    runtime = LambdaRuntime(timeout_scale=1.0)      # or LambdaRuntime(admin=sandbox.admin)
    with runtime:                                   # install(): moto invokes through it
        result = runtime.invoke("app-dev-worker", {"jobId": "j-1"})
        result.error_type                           # None, "QuotaExceeded", "Sandbox.Timedout"

`InvocationResult` and `Invoker` are the interface to the delivery part of the
sandbox (event source pollers, rule targets, async retries): it calls `invoke`, the
runtime runs the code.

How a function runs (what Lambda does, and how it is done in one process):

- Lookup: the function (name, ARN, `name:qualifier` or qualified ARN) is read from
  moto's Lambda backend: code zip, handler, runtime, role, environment, timeout,
  memory, layers. Only python runtimes and zip packages run.
- Containers: the zip is extracted once per code hash into a private temp dir; a
  "container" is one execution environment of one function version: its own module
  namespace (the top-level names its zip provides, e.g. `handlers`, `eventcraft`), its
  own boto3 default session, its own role credentials and log stream. During an
  invocation its modules are swapped into `sys.modules` (the host's or another
  container's modules of the same names are set aside) and swapped out afterwards,
  so module-level state (caches, clients, circuit breakers) survives between
  invocations of the same container and is never seen by another function.
  Containers are reused warm; a busy one (a function invoking itself, invocations in
  flight together) gets a sibling, as Lambda scales out: each has its own module state.
- Imports (`containers`): the function's own code (the modules of its zip and of its
  layers) finds only what Lambda gives it: the standard library of its runtime's
  Python (less what that version removed: `imp`, `distutils` in 3.12), the runtime's
  boto3 (boto3, botocore, s3transfer, jmespath, dateutil, six, urllib3), its zip and
  its layers. Whatever else the host has (the venv's requests, yaml or Powertools,
  the repository's modules) is `ModuleNotFoundError: No module named 'x'` to it,
  imported by the host already or not; at init that is Lambda's
  Runtime.ImportModuleError, "Unable to import module 'handlers.x': No module named
  'x'". Who imports is told by the importing frame's file, past importlib's and the
  standard library's frames (`importlib.import_module`, `pkgutil.resolve_name` import
  for their caller): host code on the invocation's thread (moto serving the
  function's request, botocore, the sandbox's hooks, a package shared with the host
  importing its own dependencies) imports as on the host. A layer's package whose
  distribution and version the host installed from an index is the host's copy
  (`shared_with_host`: no second import, and its binary wheels built for Lambda's
  platform are never loaded here); the layer's other packages are the function's own,
  isolated like the zip's. While installed, the guard is a finder first on
  `sys.meta_path` and wraps `builtins.__import__` and `importlib.import_module`.
- Concurrency (`concurrency`, `interleaving`): each invocation takes a slot of its
  function while it runs; past the function's reserved concurrency
  (`PutFunctionConcurrency`; always enforced) or the run's limit (`concurrency.limit`,
  the `concurrency=N` fault) it is throttled as Lambda throttles:
  `TooManyRequestsException` (429, with its `Reason`) to a synchronous Invoke,
  `Lambda.TooManyRequestsException` to a Step Functions task, a refused
  `InvocationResult` (`status_code` 429) to the delivery. Invocations in flight
  together (a Step Functions execution's task beside a poller's batch, or batches the
  delivery starts together: `invoke_together`) run in turns, each with its own
  process-wide state, switching at their AWS calls and sleeps (see `interleaving`).
- Environment: `os.environ` is replaced for the call by Lambda's variables
  (AWS_LAMBDA_FUNCTION_NAME, AWS_REGION, _HANDLER, LAMBDA_TASK_ROOT, ...), the
  function's own, and the credentials of its role, then restored. Nothing of the
  host's AWS configuration leaks in (MOTO_* settings and PATH/HOME/TMPDIR are kept).
- Credentials: the function's role is assumed as the Lambda service assumes it
  (moto's STS, after checking that the role's trust policy lets
  lambda.amazonaws.com assume it with the function's ARN as aws:SourceArn and its
  account as aws:SourceAccount). With IAM enforced in moto, a call the role does
  not allow fails with AccessDenied. moto checks most services against the resource
  "*", which would deny every resource-scoped policy; `install()` therefore also
  resolves the resources of DynamoDB, DynamoDB Streams, EventBridge, Kinesis, Step
  Functions, Lambda, SNS and CloudWatch Logs requests (see `request_permissions`),
  as AWS does (a TransactWriteItems Put needs dynamodb:PutItem on its table), uses
  AWS's action names (lambda:InvokeFunction, not moto's lambda:Invoke) and answers a
  denial on a JSON service with AccessDeniedException naming the resource.
- Time: the handler runs in a worker thread, and its time is its own, never the wall
  clock of a loaded machine (`handler_time`): its thread's CPU time (divided by
  `timeout_scale`), plus its sleeps, plus the synchronous invocations it waits on.
  `time.sleep` on an invocation's thread is virtual: it returns at once, counts
  its seconds and moves the runtime's clock (the sandbox's `VirtualClock`) forward,
  so botocore's retry backoffs, a publisher's backoff and a handler's own polling
  cost no real time. The timeout and `context.get_remaining_time_in_millis()` count
  that time; the REPORT line's Duration too. The handler's clock (`time.time()`,
  `datetime.now()`, ...) is the runtime's clock at the invocation's start plus that
  time (`handler_clock`).
- Timeouts: past its timeout (a busy loop's CPU, or a sleep that outlasts it) the
  result is "Sandbox.Timedout" ("Task timed out after N.00 seconds"), the side
  effects made so far stay, the thread is stopped where that leaves nothing half
  done (an `InvocationTimedOut` raised in its handler code, never inside an AWS
  request), any further AWS call from it is refused (a frozen Lambda sandbox makes
  none) and its container is discarded: the next invocation is a cold start, as
  after a timeout in Lambda. A handler that neither uses CPU nor sleeps (blocked,
  a deadlock) is stopped by a generous wall-clock backstop, reported as
  "Sandbox.Backstop" with a message saying it is the sandbox's, not Lambda's.
- Payloads: a response over 6 MB (6,291,556 bytes, as Lambda counts) is the function
  error Lambda reports, "Function.ResponseSizeTooLarge". Request limits are the
  `Sandbox`'s (`eventcraft_sandbox.limits`).
- Errors: an unhandled exception gives `error_type` = the exception's class name
  (what Step Functions' Retry/Catch match) and `error_message` = str(exc). Init
  errors are Lambda's: Runtime.ImportModuleError, Runtime.HandlerNotFound,
  Runtime.UserCodeSyntaxError, Runtime.MalformedHandlerName; an unserialisable
  result is Runtime.MarshalError.
- Logs: print(), sys.stderr, the `logging` module and Powertools' Logger are
  captured per invocation (never into another one, never to the host's stdout),
  framed like Lambda's (START / END / REPORT lines) and also written to the
  function's CloudWatch log group in moto when that group exists.

moto integration (`install()` / `uninstall()`, or `with runtime:`):
- `moto.awslambda.models.LambdaFunction._invoke_lambda` is replaced, so the Invoke
  API (boto3 `lambda.invoke`) and Step Functions Lambda tasks run here. An errored
  invocation reaches Step Functions with its error type, so Catch/Retry on
  ["QuotaExceeded"] match. InvocationType=Event through the API is handed to
  `event_dispatcher` when set (the delivery part's async queue), else run inline.
- moto invoking a function by itself (its own event source mappings, SNS
  subscriptions, S3/log notifications) raises `InternalInvocationError`: the sandbox
  delivers those events itself.
- A Task whose Resource is a function's ARN reports a Lambda API error (a throttle)
  as `Lambda.<code>`, as Step Functions does (moto names them all `Exception`).
- Step Functions tasks call AWS with the state machine's role (assumed as
  states.amazonaws.com, with the state machine's ARN as aws:SourceArn) instead of
  moto's fixed fake key, which IAM enforcement rejects.
- `MOTO_LOCK` serialises every request moto handles (moto's backends are not
  thread-safe); it is held only for each AWS call, never while user code runs.
The hooked moto internals are checked against moto 5.2.5 (`check_moto_hooks`):
`install()` raises `MotoHookError` naming what changed.

Known limits: `os.environ`, `sys.modules` and `sys.path` are process-wide, so one
handler runs at a time: invocations in flight together take turns at their AWS calls and
sleeps (`interleaving`; without the `concurrency` fault a chain runs to its end before
the next one starts, and a nested synchronous Invoke from a handler runs inside it); a
handler that waits for another invocation without an AWS call or a sleep keeps the turn
and meets the backstop, and one that polls a Step Functions execution it started runs
out its timeout (in virtual time, when it polls with sleeps). Work due elsewhere in the
sandbox while a handler sleeps runs after it returns, at the later virtual time (the
sandbox delivers one thing at a time); the sleeps of invocations in flight together add
up on the virtual clock instead of overlapping. A handler's `time.monotonic()` and
`time.perf_counter()` stay real: a loop bounded by them that sleeps runs out its timeout
instead (one bounded by its clock, `time.time()` or `datetime.now()`, ends as in AWS).
Sleeps other than `time.sleep` (`threading.Event.wait`, `asyncio.sleep`) are real. Code
outside a handler that reads the environment during an invocation sees the function's.
Threads a handler starts are not part of the invocation (their output is not captured,
their Invoke calls are chains of their own that wait for their turn). Process-wide
state of shared libraries is shared between functions: `logging` loggers by name, Powertools
Metrics/Tracer class state. A package shared with the host runs on the host's Python
and imports what the host has (its own dependencies, extras the layer may lack):
`tests/system/test_lambda_python.py` imports every handler on the runtime's Python with
only the code, the layer and boto3 on its path. Code that reaches a host module without
importing it (through `sys.modules`) is not refused.

The package, by seam:
- `interface`: `InvocationResult`, `Invoker`, `Clock`, the errors;
- `moto_hooks`: `MOTO_LOCK`, the hook checks, the patch registry, the hooks themselves;
- `iam`: each request's resources and AWS's action names for moto's IAM checks;
- `credentials`: role trust and AssumeRole as a service;
- `function_spec`: a function version as moto holds it;
- `containers`: code/layer extraction, the import guard, the process-wide swap;
- `concurrency`: invocations in flight per function, reserved concurrency, throttling;
- `interleaving`: the turns of the invocations in flight together (the baton);
- `log_capture`: stdout/stderr and `logging` routed to the running invocation;
- `handler_time`: a handler's elapsed time, virtual sleeps;
- `handler_clock`: a handler's clock on the virtual one (`time.time`, `datetime.now`);
- `captured`: rebinding references captured before install (`from time import sleep`);
- `invocation`: handler loading, the worker thread, marshalling, the outcome;
- `runtime`: `LambdaRuntime`, which ties them together.
"""

from eventcraft_sandbox.lambda_context import LambdaContext
from eventcraft_sandbox.lambda_runtime.function_spec import FunctionSpec, LayerCode
from eventcraft_sandbox.lambda_runtime.iam import (
    IAM_ACTIONS,
    Permission,
    aws_action,
    install_iam_resources,
    request_permissions,
    uninstall_iam_resources,
)
from eventcraft_sandbox.lambda_runtime.interface import (
    AdminIdentity,
    Clock,
    EventDispatcher,
    FunctionNotFoundError,
    InternalInvocationError,
    InvocationFrozenError,
    InvocationResult,
    Invoker,
    LambdaRuntimeError,
    MotoHookError,
    RoleNotAssumableError,
)
from eventcraft_sandbox.lambda_runtime.moto_hooks import (
    MOTO_LOCK,
    PINNED_MOTO,
    MotoLock,
    check_moto_hooks,
    install_moto_lock,
    uninstall_moto_lock,
)
from eventcraft_sandbox.lambda_runtime.runtime import LambdaRuntime

__all__ = [
    "IAM_ACTIONS",
    "MOTO_LOCK",
    "PINNED_MOTO",
    "AdminIdentity",
    "Clock",
    "EventDispatcher",
    "FunctionNotFoundError",
    "FunctionSpec",
    "InternalInvocationError",
    "InvocationFrozenError",
    "InvocationResult",
    "Invoker",
    "LambdaContext",
    "LambdaRuntime",
    "LambdaRuntimeError",
    "LayerCode",
    "MotoHookError",
    "MotoLock",
    "Permission",
    "RoleNotAssumableError",
    "aws_action",
    "check_moto_hooks",
    "install_iam_resources",
    "install_moto_lock",
    "request_permissions",
    "uninstall_iam_resources",
    "uninstall_moto_lock",
]
