"""`python -m order_saga demo`: the whole order saga at work in the sandbox, with a verdict.

    python -m order_saga demo                              # 15 orders, the dev stack
    python -m order_saga demo --orders 200 --saga both --fail-rate 0.2 --duplicate-rate 0.3
    python -m order_saga demo --json                       # one JSON object on stdout

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
5. runs until quiet and reports: orders completed / cancelled / stuck, events by
   detail-type, invocations by function, DLQ depths, the handlers' AWS calls, and the
   invariants (`OrderSagaSession.invariants`, plus `nothing_dead_lettered`: no event or
   message ended in a DLQ, i.e. every failed delivery was retried to success).

The exit status is 1 when an invariant is false (0 otherwise; 2 for a bad stack or
option). A progress bar goes to stderr while it runs (when stderr is a terminal, or
without --json). Order ids are uuid4s chosen by the system, so which orders go to which
saga (`both`: by their last hex digit) and which fail transiently differs between runs;
the mix of requests is the same for the same seed.
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
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import IO, Any, Final

from order_saga.sandbox.session import FINAL_STATUSES, OrderSagaSession

__all__ = ["DemoOptions", "DemoResult", "dead_letter_problem", "main", "plan", "render", "run_demo"]

DEFAULT_ORDERS: Final = 15
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

    say(f"deploying stack {options.stack} into the sandbox ...")
    session = OrderSagaSession(
        options.stack,
        config=options.config(),
        duplicate_rate=options.duplicate_rate,
        seed=options.seed,
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
        say(
            f"deployed {sum(1 for r in session.deployment.resources if r.custom)} resources "
            f"in {session.deploy_seconds:.1f}s (saga mode {outputs.get('sagaMode')}); "
            f"placing {options.orders} orders ..."
        )
        session.seed_customers(work.customers)
        session.seed_stock(work.stock)
        refused: list[str] = []
        for index, request in enumerate(work.requests):

            def place(request: Mapping[str, Any] = request) -> None:
                try:
                    session.submit_order(request)
                except RuntimeError as exc:
                    refused.append(f"{request['clientRequestId']}: {exc}")

            session.scheduler.call_later(
                index * ORDER_INTERVAL_SECONDS, "client place-order", place
            )
        run_started = time.perf_counter()
        if err is not None:
            with Progress(err, options.orders, session):
                quiet = session.run_until_quiet()
        else:
            quiet = session.run_until_quiet()
        run_seconds = time.perf_counter() - run_started
        result = _collect(session, options, refused)
        result.report["virtual_seconds"] = round(quiet.virtual_seconds, 1)
        result.report["deploy_seconds"] = round(session.deploy_seconds, 1)
        result.report["run_seconds"] = round(run_seconds, 1)
    result.report["seconds"] = round(time.perf_counter() - started, 1)
    return result


def _collect(session: OrderSagaSession, options: DemoOptions, refused: Sequence[str]) -> DemoResult:
    orders = session.orders()
    placed = list(session.placed)
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
    invariants["nothing_dead_lettered"] = not any(dlq.values())
    problems = dict(report.problems)
    if not invariants["nothing_dead_lettered"]:
        problems["nothing_dead_lettered"] = [
            dead_letter_problem(name, depth, session.dlq_messages(name, limit=3))
            for name, depth in dlq.items()
            if depth
        ]
    if refused:
        invariants["every_order_accepted"] = False
        problems["every_order_accepted"] = list(refused[:5])
    aws_calls = session.aws_calls
    json_report: dict[str, Any] = {
        "orders": options.orders,
        "completed": statuses.get("COMPLETED", 0),
        "cancelled": statuses.get("CANCELLED", 0),
        "stuck": len(stuck) + (options.orders - len(placed)),
        "events": dict(sorted(session.events.items())),
        "invocations": session.invocations,
        "dlq": dlq,
        "aws_calls": aws_calls,
        "aws_calls_per_order": round(aws_calls / max(options.orders, 1), 1),
        "invariants": invariants,
        "seconds": 0.0,
        "stack": options.stack,
        "saga_mode": session.outputs.get("sagaMode"),
        "cancelled_at_step": dict(sorted(failed_steps.items())),
        "duplicates_delivered": sum(session.duplicates.values()),
        "function_errors": session.invocation_errors,
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
        "",
        "  invariants:",
    ]
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


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text} is not a whole number >= 1")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--stack", default="dev", help="stack name: reads Pulumi.<stack>.yaml")
    parser.add_argument(
        "--orders",
        type=_positive,
        default=DEFAULT_ORDERS,
        help=f"orders to place (default {DEFAULT_ORDERS})",
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
    parser.add_argument("--json", action="store_true", help="print one JSON object on stdout")


def options_from(parsed: argparse.Namespace) -> DemoOptions:
    return DemoOptions(
        stack=parsed.stack,
        orders=parsed.orders,
        saga=parsed.saga,
        fail_rate=parsed.fail_rate,
        duplicate_rate=parsed.duplicate_rate,
        seed=parsed.seed,
        json=parsed.json,
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
