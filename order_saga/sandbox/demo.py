"""`python -m order_saga demo`: the whole order saga at work in the sandbox, with a verdict.

    python -m order_saga demo                              # 15 orders, the dev stack
    python -m order_saga demo --orders 200 --saga both --fail-rate 0.2 --duplicate-rate 0.3
    python -m order_saga demo --json                       # one JSON object on stdout
    python -m order_saga demo --orders-file mine.jsonl --stock stock.json   # your orders
    python -m order_saga demo --fault lost-reply@ship-order-task=0.2 --fault outage@events=60+600

What it does, with an `OrderSagaSession` (the program deployed into moto, the handlers run
with their roles, events delivered with AWS's semantics on a virtual clock):

1. deploys the stack (`--stack`, default dev), with `--saga` as its `sagaMode` and, with
   `--fail-rate P`, the simulated providers' knobs as stack config: a transient payment
   failure for a share P of the orders (`paymentTransientFailureRate`, retried by the
   system), a carrier refusal for P/2 (`shippingFailureRate`), seeded by `--seed`;
   without it the stack's own settings apply;
2. seeds customers and stock: a catalog priced around the stack's high-value threshold,
   stock for about 1.5 times the demand, except one SKU stocked for about half of it
   (it runs out while the orders come in);
3. places N orders through the `place-order` function, all at the start (a burst: the
   queues, the payments and the stock's conditional writes see them together),
   from a seeded mix of customers: known ones, unknown ones (no customer record: the
   enrichment and credit check still run), `declined-*` ones (the payment provider
   declines them: a share P/2, or 5%) and `undeliverable-*` ones (the carrier refuses
   them: P/4, or 2%);
4. with `--duplicate-rate Q`, puts a share Q of the bus's events a second time, a few
   virtual seconds later, with the same detail (the same eventId): at-least-once
   delivery that every handler must absorb;
   with `--fault NAME[@TARGET]=VALUE` (repeatable), injects the faults AWS really
   produces (lost replies, timeouts mid-function, throttling, outages, partial
   PutEvents, transaction conflicts: `eventcraft_sandbox.faults`), seeded by `--seed`;
5. runs until quiet and reports: orders completed / cancelled / stuck, events by
   detail-type, invocations by function, DLQ depths, the handlers' AWS calls, the
   faults injected (by name), and the
   invariants (`OrderSagaSession.invariants`, plus `nothing_dead_lettered`: no event or
   message ended in a DLQ, i.e. every failed delivery was retried to success,
   `no_event_lost`: every event written to the outbox reached the bus, and
   `every_handler_loaded`: no handler failed to load its code, e.g. a module that
   neither the Lambda runtime nor the layer has, named with the function, its handler
   and the error);
6. with `--redrive`, once quiet, redrives every DLQ as an operator would (`python -m ops
   dlq redrive`, the same code) and runs again, up to 3 rounds: the report counts the
   messages `dead_lettered` and `redriven`, and `every_dead_letter_redriven` replaces
   `nothing_dead_lettered` (faults may dead-letter a message; none may stay there).

Your own orders: `--orders-file FILE` places the requests of a JSON-lines file (one
`place-order` request per line, e.g. `{"clientRequestId": "r-1", "customerId":
"customer-001", "items": [{"sku": "sku-mug", "quantity": 2, "unitPriceCents": 2000}]}`;
blank lines are skipped) instead of the generated mix, in the file's order. Stock comes
from `--stock FILE` (a JSON object, SKU -> units) or, without it, the demo's catalogue
stocked for the file's demand as above. The demo's known customers are seeded either
way. The report lists the lines refused (not JSON, or refused by `place-order`) with
their reasons (`"rejected": [{"line": 3, "error": "..."}]`, lines counted from 1); a
refused line of your file is a result, not a broken invariant, and the invariants
cover every order that was placed.

The exit status is 1 when an invariant is false (0 otherwise; 2 for a bad stack or
option). A stack AWS would refuse is a bad stack: the deploy fails with AWS's error,
e.g. reserved concurrency beyond what `--concurrency-quota N` (the account's Lambda
concurrency quota, default 1000, AWS's usual one) leaves reservable, or an alarm on a
metric AWS never publishes. A progress bar goes to stderr while it runs (when stderr
is a terminal, or without --json). Order ids are uuid4s chosen by the system, so which
orders go to which saga (`both`: by their last hex digit) and which fail transiently
differs between runs; the mix of requests is the same for the same seed.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Final

from eventcraft_sandbox.faults import Fault, FaultError
from eventcraft_sandbox.quotas import DEFAULT_CONCURRENCY_QUOTA, concurrency_quota_option
from order_saga.sandbox.session import FINAL_STATUSES, InvocationFailedError, OrderSagaSession

__all__ = [
    "DemoInputError",
    "DemoOptions",
    "DemoResult",
    "OrdersFile",
    "dead_letter_problem",
    "main",
    "plan",
    "read_orders_file",
    "read_stock_file",
    "render",
    "run_demo",
]

DEFAULT_ORDERS: Final = 15
# --redrive: rounds of "redrive every DLQ, run until quiet" at most (a message that
# fails again each time stays in its DLQ and the verdict says so).
REDRIVE_ROUNDS: Final = 3
# The client: place-order's refusals are final; anything else is retried with the same
# request id, backing off 2, 4, ... seconds (at most 60) for at most 40 attempts (~35
# virtual minutes: longer than a regional service's usual outage).
CLIENT_REFUSALS: Final = frozenset({"InvalidOrderError", "RequestIdReusedError"})
CLIENT_ATTEMPTS: Final = 40
CLIENT_BACKOFF_CAP_SECONDS: Final = 60.0
ORDER_INTERVAL_SECONDS: Final = 0.0
KNOWN_CUSTOMERS: Final = 20
# Catalog: (sku, price as a share of the high-value threshold).
CATALOG: Final = (
    ("sku-mug", 0.02),
    ("sku-kettle", 0.08),
    ("sku-grinder", 0.25),
    ("sku-espresso-machine", 0.6),
    ("sku-roaster", 1.1),
)
SCARCE_SKU: Final = "sku-espresso-machine"
STOCK_FACTOR: Final = 1.5
SCARCE_FACTOR: Final = 0.5
UNKNOWN_SHARE: Final = 0.1
DEFAULT_DECLINE_SHARE: Final = 0.05
DEFAULT_UNDELIVERABLE_SHARE: Final = 0.02
TIERS: Final = ("standard", "gold", "platinum")


@dataclass(frozen=True)
class DemoOptions:
    """The command's options (see `main` for their flags)."""

    stack: str = "dev"
    orders: int = DEFAULT_ORDERS
    saga: str | None = None
    fail_rate: float | None = None
    duplicate_rate: float = 0.0
    seed: int = 0
    json: bool = False
    orders_file: Path | None = None
    stock_file: Path | None = None
    redrive: bool = False
    faults: tuple[str, ...] = ()
    concurrency_quota: int = DEFAULT_CONCURRENCY_QUOTA

    def config(self) -> dict[str, str]:
        """The stack config overrides these options ask for."""
        overrides: dict[str, str] = {}
        if self.saga is not None:
            overrides["sagaMode"] = self.saga
        if self.fail_rate is not None:
            overrides["paymentTransientFailureRate"] = _number(self.fail_rate)
            overrides["shippingFailureRate"] = _number(self.fail_rate / 2)
            overrides["failureSeed"] = f"demo-{self.seed}"
        return overrides


@dataclass
class DemoResult:
    """What the demo found: `report` (the JSON object) and the exit status."""

    report: dict[str, Any]
    problems: dict[str, list[str]] = field(default_factory=dict)
    stuck_orders: list[str] = field(default_factory=list)

    @property
    def exit_status(self) -> int:
        return 0 if all(self.report["invariants"].values()) else 1


def _number(value: float) -> str:
    return f"{value:.6g}"


class DemoInputError(ValueError):
    """An orders or stock file the demo cannot read (the message names the file, the
    line and what is allowed)."""


@dataclass(frozen=True)
class OrdersFile:
    """The requests of an orders file with their line numbers (from 1), and the lines
    refused before placing (not JSON, not a JSON object)."""

    requests: list[tuple[int, dict[str, Any]]]
    rejected: list[dict[str, Any]]


def _read_text(path: Path, what: str) -> str:
    try:
        return path.read_text(encoding="utf-8-sig")  # a byte-order mark is not content
    except OSError as exc:
        raise DemoInputError(f"{what} {path}: cannot read it ({exc.strerror or exc})") from None
    except UnicodeDecodeError as exc:
        raise DemoInputError(
            f"{what} {path}: not UTF-8 text (byte {exc.start}: {exc.reason})"
        ) from None


def read_orders_file(path: Path) -> OrdersFile:
    """One place-order request per line (JSON-lines; blank lines skipped). A line that
    is not a JSON object is refused with its reason, not fatal: `place-order` refuses
    the rest the same way when it runs."""
    requests: list[tuple[int, dict[str, Any]]] = []
    rejected: list[dict[str, Any]] = []
    for number, line in enumerate(_read_text(path, "--orders-file").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            request = json.loads(line, parse_constant=_no_constant)
        except (ValueError, RecursionError) as exc:
            reason = str(exc) if isinstance(exc, ValueError) else "nested too deeply"
            rejected.append({"line": number, "error": f"not JSON: {reason}"})
            continue
        if not isinstance(request, dict):
            rejected.append(
                {
                    "line": number,
                    "error": f"a request is a JSON object, not {type(request).__name__}",
                }
            )
            continue
        requests.append((number, request))
    if not requests and not rejected:
        raise DemoInputError(f"--orders-file {path}: no requests in it (one JSON object per line)")
    return OrdersFile(requests, rejected)


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def read_stock_file(path: Path) -> dict[str, int]:
    """A JSON object, SKU -> whole number of units >= 0."""
    try:
        stock = json.loads(_read_text(path, "--stock"), parse_constant=_no_constant)
    except ValueError as exc:
        raise DemoInputError(f"--stock {path}: not JSON ({exc})") from None
    if not isinstance(stock, dict) or not stock:
        raise DemoInputError(
            f'--stock {path}: expected a JSON object of SKU to units, e.g. {{"sku-mug": 40}}'
        )
    for sku, units in stock.items():
        if isinstance(units, bool) or not isinstance(units, int) or units < 0:
            raise DemoInputError(
                f"--stock {path}: {sku!r}: {json.dumps(units)} is not a whole number of units >= 0"
            )
    return {str(sku): int(units) for sku, units in stock.items()}


def _catalogue_stock(requests: Sequence[Mapping[str, Any]]) -> dict[str, int]:
    """The demo's catalogue stocked for the demand of these requests (as `plan` does);
    lines that are not well formed count for nothing (place-order refuses them)."""
    demand: Counter[str] = Counter()
    for request in requests:
        items = request.get("items")
        for item in items if isinstance(items, list) else ():
            if isinstance(item, dict):
                quantity = item.get("quantity")
                if isinstance(quantity, int) and not isinstance(quantity, bool) and quantity > 0:
                    demand[str(item.get("sku"))] += quantity
    return {
        sku: math.ceil(demand[sku] * (SCARCE_FACTOR if sku == SCARCE_SKU else STOCK_FACTOR))
        for sku, _ in CATALOG
    }


# ------------------------------------------------------------------------ the plan


@dataclass(frozen=True)
class Plan:
    """The seeded workload: customers to seed, stock to seed, requests to place."""

    customers: list[dict[str, Any]]
    stock: dict[str, int]
    requests: list[dict[str, Any]]


def plan(orders: int, *, threshold_cents: int, seed: int, fail_rate: float | None) -> Plan:
    """The seeded mix of orders (see the module docstring)."""
    rng = random.Random(f"demo/{seed}")
    prices = {sku: max(100, round(threshold_cents * share)) for sku, share in CATALOG}
    customers = [
        {
            "customerId": f"customer-{k:03d}",
            "tier": TIERS[k % len(TIERS)],
            "name": f"Customer {k}",
            "region": ("eu-west", "us-east", "ap-south")[k % 3],
            "creditLimitCents": int(threshold_cents * (1 + k % 4)),
        }
        for k in range(KNOWN_CUSTOMERS)
    ]
    declined = fail_rate / 2 if fail_rate is not None else DEFAULT_DECLINE_SHARE
    undeliverable = fail_rate / 4 if fail_rate is not None else DEFAULT_UNDELIVERABLE_SHARE
    requests: list[dict[str, Any]] = []
    demand: Counter[str] = Counter()
    skus = [sku for sku, _ in CATALOG]
    weights = [5, 4, 3, 2, 1]
    for index in range(orders):
        draw = rng.random()
        if draw < declined:
            customer = f"declined-{index:05d}"
        elif draw < declined + undeliverable:
            customer = f"undeliverable-{index:05d}"
        elif draw < declined + undeliverable + UNKNOWN_SHARE:
            customer = f"guest-{index:05d}"
        else:
            customer = str(customers[rng.randrange(KNOWN_CUSTOMERS)]["customerId"])
        chosen = sorted(set(rng.choices(skus, weights=weights, k=rng.choice((1, 1, 2)))))
        items: list[dict[str, Any]] = [
            {"sku": sku, "quantity": rng.choice((1, 1, 2, 3)), "unitPriceCents": prices[sku]}
            for sku in chosen
        ]
        for item in items:
            demand[item["sku"]] += item["quantity"]
        requests.append(
            {"clientRequestId": f"demo-{seed}-{index:05d}", "customerId": customer, "items": items}
        )
    stock = {
        sku: math.ceil(demand[sku] * (SCARCE_FACTOR if sku == SCARCE_SKU else STOCK_FACTOR))
        for sku in skus
    }
    return Plan(customers, stock, requests)


# ------------------------------------------------------------------------ progress


class Progress:
    """A progress bar on a stream, redrawn by its own thread (handler threads must not
    write: the Lambda runtime captures their output)."""

    WIDTH: Final = 30

    def __init__(self, stream: IO[str], total: int, session: OrderSagaSession) -> None:
        self.stream = stream
        self.total = max(total, 1)
        self.session = session
        self.started = time.perf_counter()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="demo-progress", daemon=True)
        self._tty = bool(getattr(stream, "isatty", lambda: False)())
        self._last = ""

    def __enter__(self) -> Progress:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._draw(final=True)

    def _line(self) -> str:
        finals = len(self.session.outcomes)
        placed = len(self.session.placed)
        done = min(finals, self.total)
        filled = int(self.WIDTH * done / self.total)
        bar = "#" * filled + "." * (self.WIDTH - filled)
        return (
            f"[{bar}] {done}/{self.total} orders final ({placed} placed) "
            f"{sum(self.session.events.values())} events "
            f"{time.perf_counter() - self.started:5.1f}s"
        )

    def _draw(self, *, final: bool = False) -> None:
        line = self._line()
        if self._tty:
            self.stream.write("\r" + line + ("\n" if final else ""))
        elif final or line.split(" orders")[0] != self._last.split(" orders")[0]:
            # Not a terminal: a line per change of the count, not a redraw per tick.
            self.stream.write(line + "\n")
        self._last = line
        self.stream.flush()

    def _loop(self) -> None:
        interval = 0.2 if self._tty else 2.0
        while not self._stop.wait(interval):
            self._draw()


# ------------------------------------------------------------------------ running


def run_demo(options: DemoOptions, *, err: IO[str] | None = None) -> DemoResult:
    """Run the demo (module docstring); progress and phases go to `err` (None: quiet)."""
    started = time.perf_counter()

    def say(text: str) -> None:
        if err is not None:
            err.write(text + "\n")
            err.flush()

    # The files are read before deploying: a bad file costs no deploy.
    orders_file = read_orders_file(options.orders_file) if options.orders_file else None
    stock = read_stock_file(options.stock_file) if options.stock_file else None
    say(f"deploying stack {options.stack} into the sandbox ...")
    session = OrderSagaSession(
        options.stack,
        config=options.config(),
        duplicate_rate=options.duplicate_rate,
        seed=options.seed,
        faults=options.faults,
        concurrency_quota=options.concurrency_quota,
    )
    with session:
        outputs = session.outputs
        threshold = int(outputs.get("highValueThresholdCents") or 100_000)
        work = plan(
            options.orders,
            threshold_cents=threshold,
            seed=options.seed,
            fail_rate=options.fail_rate,
        )
        numbered = list(enumerate(work.requests, start=1))
        rejected: list[dict[str, Any]] = []
        if orders_file is not None:
            numbered, rejected = list(orders_file.requests), list(orders_file.rejected)
            work = Plan(work.customers, stock or _catalogue_stock([r for _, r in numbered]), [])
        say(
            f"deployed {sum(1 for r in session.deployment.resources if r.custom)} resources "
            f"in {session.deploy_seconds:.1f}s (saga mode {outputs.get('sagaMode')}); "
            f"placing {len(numbered)} orders ..."
        )
        session.seed_customers(work.customers)
        session.seed_stock(work.stock)
        refused = _schedule_requests(session, numbered, rejected if orders_file else None)
        run_started = time.perf_counter()
        if err is not None:
            with Progress(err, len(numbered), session):
                virtual_seconds = session.run_until_quiet().virtual_seconds
        else:
            virtual_seconds = session.run_until_quiet().virtual_seconds
        if options.redrive:
            dead_lettered, redriven, more_seconds = _redrive_rounds(session, say)
            virtual_seconds += more_seconds
        run_seconds = time.perf_counter() - run_started
        result = _collect(session, options, refused, len(numbered))
        if options.redrive:
            result.report["dead_lettered"] = dead_lettered
            result.report["redriven"] = redriven
        if orders_file is not None:
            result.report["rejected"] = sorted(rejected, key=lambda r: int(r["line"]))
        result.report["virtual_seconds"] = round(virtual_seconds, 1)
        result.report["deploy_seconds"] = round(session.deploy_seconds, 1)
        result.report["run_seconds"] = round(run_seconds, 1)
    result.report["seconds"] = round(time.perf_counter() - started, 1)
    return result


def _schedule_requests(
    session: OrderSagaSession,
    numbered: Sequence[tuple[int, Mapping[str, Any]]],
    rejected: list[dict[str, Any]] | None,
) -> list[str]:
    """Place each request through `place-order` at the start of the run (a burst), as a
    careful client does: a refusal is final, any other failure (a timeout, a throttled
    or unavailable service) is retried with the same `clientRequestId` after a capped
    exponential backoff in virtual time (place-order answers a retry with the order it
    placed). Refusals go to `rejected` by line (an orders file: a result) or, without
    it, to the list returned (the generated mix: a broken invariant); both fill while
    it runs, as do `session.client_retries`."""
    refused: list[str] = []

    def place(line: int, request: Mapping[str, Any], attempt: int) -> None:
        try:
            session.submit_order(request)
        except InvocationFailedError as exc:
            transient = exc.result.error_type not in CLIENT_REFUSALS
            if transient and attempt < CLIENT_ATTEMPTS:
                session.client_retries += 1
                delay = min(CLIENT_BACKOFF_CAP_SECONDS, 2.0**attempt)
                session.scheduler.call_later(
                    delay, "client place-order retry", lambda: place(line, request, attempt + 1)
                )
            elif rejected is None:
                refused.append(f"{request.get('clientRequestId')}: {exc}")
            else:
                rejected.append({"line": line, "error": _refusal(exc)})

    for index, (line, request) in enumerate(numbered):
        session.scheduler.call_later(
            index * ORDER_INTERVAL_SECONDS,
            "client place-order",
            lambda line=line, request=request: place(line, request, 1),  # type: ignore[misc]
        )
    return refused


def _redrive_rounds(
    session: OrderSagaSession, say: Callable[[str], None]
) -> tuple[int, int, float]:
    """Redrive every DLQ and run until quiet, while the DLQs hold messages (at most
    REDRIVE_ROUNDS); returns the messages examined, moved, and the virtual seconds run."""
    dead_lettered = redriven = 0
    virtual_seconds = 0.0
    for _ in range(REDRIVE_ROUNDS):
        moved = session.redrive_dead_letters()
        if not moved:
            break
        dead_lettered += sum(m["examined"] for m in moved.values())
        redriven += sum(m["moved"] for m in moved.values())
        say(f"redriven {sum(m['moved'] for m in moved.values())} dead letters ...")
        virtual_seconds += session.run_until_quiet().virtual_seconds
    return dead_lettered, redriven, virtual_seconds


def _refusal(exc: RuntimeError) -> str:
    """place-order's refusal as its client reads it (the error message, without the
    function's name and error type)."""
    result = getattr(exc, "result", None)
    message = getattr(result, "error_message", None)
    return str(message) if message else str(exc)


def _collect(
    session: OrderSagaSession, options: DemoOptions, refused: Sequence[str], requested: int
) -> DemoResult:
    orders = session.orders()
    placed = list(dict.fromkeys([*session.placed, *orders]))
    statuses = Counter(str((orders.get(o) or {}).get("status", "MISSING")) for o in placed)
    stuck = sorted(
        o for o in placed if str((orders.get(o) or {}).get("status")) not in FINAL_STATUSES
    )
    failed_steps = Counter(
        str(orders[o].get("failedStep") or "unknown")
        for o in placed
        if (orders.get(o) or {}).get("status") == "CANCELLED"
    )
    report = session.invariants()
    dlq = session.dlq_depths()
    invariants = dict(report.results)
    problems = dict(report.problems)
    lost = session.lost_events()
    invariants["no_event_lost"] = not lost
    if lost:
        problems["no_event_lost"] = [f"{event} never reached the bus" for event in lost[:5]]
    # With --redrive a dead letter is expected under faults; one left after redriving is not.
    dead_letters = "every_dead_letter_redriven" if options.redrive else "nothing_dead_lettered"
    invariants[dead_letters] = not any(dlq.values())
    if not invariants[dead_letters]:
        problems[dead_letters] = [
            dead_letter_problem(name, depth, session.dlq_messages(name, limit=3))
            for name, depth in dlq.items()
            if depth
        ]
    # A handler whose code cannot load (a module its layer lacks) is named with its error.
    load_errors = session.load_errors
    invariants["every_handler_loaded"] = not load_errors
    if load_errors:
        problems["every_handler_loaded"] = [f"{f}: {e}" for f, e in load_errors.items()]
    if refused:
        invariants["every_order_accepted"] = False
        problems["every_order_accepted"] = list(refused[:5])
    aws_calls = session.aws_calls
    json_report: dict[str, Any] = {
        "orders": requested,
        "completed": statuses.get("COMPLETED", 0),
        "cancelled": statuses.get("CANCELLED", 0),
        "stuck": len(stuck),
        "events": dict(sorted(session.events.items())),
        "invocations": session.invocations,
        "dlq": dlq,
        "aws_calls": aws_calls,
        "aws_calls_per_order": round(aws_calls / max(requested, 1), 1),
        "events_lost": len(lost),
        "invariants": invariants,
        "seconds": 0.0,
        "stack": options.stack,
        "saga_mode": session.outputs.get("sagaMode"),
        "cancelled_at_step": dict(sorted(failed_steps.items())),
        "duplicates_delivered": sum(session.duplicates.values()),
        "client_retries": session.client_retries,
        "function_errors": session.invocation_errors,
        "faults": session.fault_counts,
    }
    if problems:  # what breaks each false invariant, with examples
        json_report["problems"] = problems
    return DemoResult(json_report, problems, stuck)


def dead_letter_problem(name: str, depth: int, messages: Sequence[Mapping[str, Any]]) -> str:
    """A DLQ's depth and what its first messages are (`SandboxSession.dlq_messages`):
    the event and order, how often it was received before (reading it is a receive too),
    and the error when the DLQ got one."""
    examples = []
    for message in messages:
        body = message.get("body")
        if isinstance(body, Mapping) and "detail-type" in body:
            detail = body.get("detail")
            order = detail.get("orderId") if isinstance(detail, Mapping) else None
            what = f"{body['detail-type']} of order {order or '?'}"
        else:
            what = "a message that is not an EventBridge event"
        attributes = message.get("attributes") or {}
        error = attributes.get("ErrorMessage") or attributes.get("ERROR_MESSAGE")
        receives = int(message.get("receiveCount") or 1) - 1
        examples.append(
            f"{what}, received {receives} times before" + (f" ({error})" if error else "")
        )
    return f"{name}: {depth}" + (f": {'; '.join(examples)}" if examples else "")


# ------------------------------------------------------------------------ report


def render(result: DemoResult) -> str:
    """The human-readable report."""
    r = result.report
    lines = [
        f"order-saga demo: stack {r['stack']}, saga mode {r['saga_mode']}, {r['orders']} orders",
        "",
        f"  completed {r['completed']}   cancelled {r['cancelled']}   stuck {r['stuck']}",
    ]
    if r["cancelled_at_step"]:
        steps = ", ".join(f"{k} {v}" for k, v in r["cancelled_at_step"].items())
        lines.append(f"  cancelled at: {steps}")
    if "rejected" in r:
        lines.append(f"  lines refused: {len(r['rejected'])}")
        lines += [f"    line {x['line']}: {x['error']}" for x in r["rejected"][:20]]
        if len(r["rejected"]) > 20:
            lines.append(f"    ... {len(r['rejected']) - 20} more (--json lists them all)")
    lines += ["", "  events on the bus:"]
    lines += [f"    {k:<28} {v:>6}" for k, v in r["events"].items()]
    if r["duplicates_delivered"]:
        lines.append(f"    {'(duplicates delivered)':<28} {r['duplicates_delivered']:>6}")
    lines += ["", "  invocations:"]
    errors = r["function_errors"]
    lines += [
        f"    {k:<28} {v:>6}" + (f"  ({errors[k]} errors)" if errors.get(k) else "")
        for k, v in r["invocations"].items()
    ]
    full = {k: v for k, v in r["dlq"].items() if v}
    lines += ["", f"  DLQs: {len(r['dlq'])}, " + ("all empty" if not full else f"{full}")]
    lines += [
        "",
        f"  AWS calls by the handlers: {r['aws_calls']} ({r['aws_calls_per_order']} per order)",
    ]
    if r.get("faults"):
        lines.append("  faults injected: " + ", ".join(f"{k} {v}" for k, v in r["faults"].items()))
    lines += ["", "  invariants:"]
    for name, ok in r["invariants"].items():
        lines.append(f"    {'ok  ' if ok else 'FAIL'} {name}")
        for problem in result.problems.get(name, []):
            lines.append(f"           {problem}")
    if result.stuck_orders:
        lines.append(f"  stuck orders: {', '.join(result.stuck_orders[:10])}")
    lines += [
        "",
        f"  {r['seconds']}s (deploy {r['deploy_seconds']}s, run {r['run_seconds']}s, "
        f"{r['virtual_seconds']} virtual seconds)",
    ]
    return "\n".join(lines)


# ------------------------------------------------------------------------ command line


def _rate(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not 0.0 <= value <= 1.0:  # NaN included
        raise argparse.ArgumentTypeError(f"{text} is not within 0..1")
    return value


def whole_number(text: str) -> int:
    """An option's whole number >= 1 (argparse type)."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text} is not a whole number >= 1")
    return value


def _fault(text: str) -> str:
    try:
        Fault.parse(text)
    except FaultError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--stack", default="dev", help="stack name: reads Pulumi.<stack>.yaml")
    which = parser.add_mutually_exclusive_group()
    which.add_argument(
        "--orders",
        type=whole_number,
        default=DEFAULT_ORDERS,
        help=f"orders to place, a generated mix (default {DEFAULT_ORDERS})",
    )
    which.add_argument(
        "--orders-file",
        type=Path,
        metavar="FILE",
        help="place the requests of this JSON-lines file instead (one place-order request "
        "per line)",
    )
    parser.add_argument(
        "--stock",
        type=Path,
        metavar="FILE",
        dest="stock_file",
        help="with --orders-file: the stock, a JSON object of SKU to units (default: the "
        "demo's catalogue, stocked for the file's demand)",
    )
    parser.add_argument(
        "--saga",
        choices=("choreography", "orchestration", "both"),
        help="saga mode (default: the stack's sagaMode)",
    )
    parser.add_argument(
        "--fail-rate",
        type=_rate,
        help="share of orders with a transient payment failure (P), carrier refusals (P/2), "
        "declined customers (P/2) (default: the stack's settings)",
    )
    parser.add_argument(
        "--duplicate-rate",
        type=_rate,
        default=0.0,
        help="share of the bus's events delivered a second time (default 0)",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the order mix (default 0)")
    parser.add_argument(
        "--redrive",
        action="store_true",
        help="when quiet, redrive every DLQ as an operator would (python -m ops dlq redrive) "
        f"and run again, up to {REDRIVE_ROUNDS} rounds; the verdict then asks that every "
        "dead letter was redriven",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    parser.add_argument(
        "--fault",
        type=_fault,
        action="append",
        default=[],
        metavar="NAME[@TARGET]=VALUE",
        help="inject a fault AWS produces (repeatable), e.g. lost-reply@ship-order-task=0.2, "
        "throttle@dynamodb=0.1, outage@events=60+600 (see eventcraft_sandbox.faults)",
    )
    parser.add_argument(
        "--concurrency-quota",
        type=concurrency_quota_option,
        default=DEFAULT_CONCURRENCY_QUOTA,
        metavar="N",
        help="the account's Lambda concurrent executions quota: a stack whose reserved "
        "concurrency would leave fewer than 100 unreserved fails to deploy, as on AWS "
        f"(default {DEFAULT_CONCURRENCY_QUOTA})",
    )


def options_from(parsed: argparse.Namespace) -> DemoOptions:
    return DemoOptions(
        stack=parsed.stack,
        orders=parsed.orders,
        saga=parsed.saga,
        fail_rate=parsed.fail_rate,
        duplicate_rate=parsed.duplicate_rate,
        seed=parsed.seed,
        json=parsed.json,
        orders_file=parsed.orders_file,
        stock_file=parsed.stock_file,
        redrive=parsed.redrive,
        faults=tuple(parsed.fault),
        concurrency_quota=parsed.concurrency_quota,
    )


def main(options: DemoOptions, *, out: IO[str] | None = None, err: IO[str] | None = None) -> int:
    """Run the demo and print its report (JSON on `out` with --json); the exit status."""
    out = out if out is not None else sys.stdout
    err = err if err is not None else sys.stderr
    show_progress = not options.json or bool(getattr(err, "isatty", lambda: False)())
    result = run_demo(options, err=err if show_progress else None)
    if options.json:
        out.write(json.dumps(result.report) + "\n")
    else:
        out.write(render(result) + "\n")
    out.flush()
    return result.exit_status
