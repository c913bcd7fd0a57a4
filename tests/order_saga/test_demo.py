"""`python -m order_saga demo` (`order_saga.sandbox.demo`): the seeded plan, the options
as stack config, the progress bar, the report and its exit status, the command line's
checks, one real run with `--json` in a subprocess (~25 s: a deploy and six orders), one
of a copy of the program whose layer lacks Powertools (~20 s: one saga, one order) and
one in process with a fault injected (`--fault`)."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import pytest

from eventcraft_sandbox.faults import FaultPlan
from order_saga.__main__ import main as cli
from order_saga.sandbox import demo
from order_saga.sandbox.session import OrderSagaSession

ROOT = Path(__file__).resolve().parents[2]
THRESHOLD = 100_000
REQUIRED_KEYS = {
    "orders",
    "completed",
    "cancelled",
    "stuck",
    "events",
    "invocations",
    "dlq",
    "aws_calls",
    "aws_calls_per_order",
    "invariants",
    "seconds",
}
REQUIRED_INVARIANTS = {
    "inventory_conserved",
    "no_double_charge",
    "refunds_match_charges_of_cancelled_orders",
    "every_order_final",
    "read_model_matches_event_store",
}


# ----------------------------------------------------------------------- the plan


def _plan(seed: int, *, orders: int = 200, fail_rate: float | None = None) -> demo.Plan:
    return demo.plan(orders, threshold_cents=THRESHOLD, seed=seed, fail_rate=fail_rate)


def test_the_plan_is_the_same_for_a_seed_and_differs_across_seeds() -> None:
    assert _plan(7) == _plan(7)
    assert _plan(7).requests != _plan(8).requests
    assert [r["clientRequestId"] for r in _plan(7, orders=3).requests] == [
        "demo-7-00000",
        "demo-7-00001",
        "demo-7-00002",
    ]


def test_the_plan_mixes_customers_and_amounts() -> None:
    """Known, unknown (guest), declined and undeliverable customers; order totals on
    both sides of the high-value threshold; requests only from the catalog."""
    work = _plan(0)
    known = {c["customerId"] for c in work.customers}
    assert len(known) == demo.KNOWN_CUSTOMERS
    kinds = Counter(
        "known" if r["customerId"] in known else r["customerId"].split("-")[0]
        for r in work.requests
    )
    assert set(kinds) == {"known", "guest", "declined", "undeliverable"}
    assert kinds["known"] > len(work.requests) / 2
    totals = [sum(i["quantity"] * i["unitPriceCents"] for i in r["items"]) for r in work.requests]
    assert min(totals) < THRESHOLD < max(totals)
    assert {i["sku"] for r in work.requests for i in r["items"]} <= set(work.stock)


def test_the_fail_rate_sets_the_declined_and_undeliverable_shares() -> None:
    """P/2 declined and P/4 undeliverable customers: none with P = 0, many with P = 0.8."""

    def count(work: demo.Plan, prefix: str) -> int:
        return sum(r["customerId"].startswith(prefix) for r in work.requests)

    none = _plan(0, fail_rate=0.0)
    assert count(none, "declined-") == count(none, "undeliverable-") == 0
    many = _plan(0, fail_rate=0.8)
    assert 60 < count(many, "declined-") < 100  # ~40% of 200
    assert 20 < count(many, "undeliverable-") < 60  # ~20% of 200


def test_the_stock_covers_demand_except_the_scarce_sku() -> None:
    work = _plan(3)
    demand: Counter[str] = Counter()
    for request in work.requests:
        for item in request["items"]:
            demand[item["sku"]] += item["quantity"]
    for sku, units in work.stock.items():
        if sku == demo.SCARCE_SKU:
            assert units < demand[sku]
        else:
            assert units >= demand[sku]


def test_options_become_stack_config() -> None:
    assert demo.DemoOptions().config() == {}
    assert demo.DemoOptions(saga="orchestration", fail_rate=0.3, seed=4).config() == {
        "sagaMode": "orchestration",
        "paymentTransientFailureRate": "0.3",
        "shippingFailureRate": "0.15",
        "failureSeed": "demo-4",
    }


# ----------------------------------------------------------------------- progress


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def _progress_session(final: int, placed: int, events: int) -> OrderSagaSession:
    fake = SimpleNamespace(
        outcomes={f"o{k}": "COMPLETED" for k in range(final)},
        placed=[f"o{k}" for k in range(placed)],
        events=Counter({"OrderPlaced": events}),
    )
    return cast(OrderSagaSession, fake)


def test_progress_writes_a_final_line_and_redraws_in_place_on_a_terminal() -> None:
    stream = io.StringIO()
    with demo.Progress(stream, 4, _progress_session(2, 4, 9)):
        pass
    line = stream.getvalue()
    assert line.startswith("[" + "#" * 15 + "." * 15 + "] 2/4 orders final (4 placed) 9 events ")
    assert line.count("\n") == 1 and line.endswith("s\n")

    terminal = _Terminal()
    with demo.Progress(terminal, 2, _progress_session(5, 2, 0)):
        pass
    assert terminal.getvalue().startswith("\r[" + "#" * 30 + "] 2/2 orders final")
    assert terminal.getvalue().endswith("\n")


# ----------------------------------------------------------------------- report


def _report(**invariants: bool) -> dict[str, Any]:
    return {
        "orders": 3,
        "completed": 2,
        "cancelled": 1,
        "stuck": 0,
        "events": {"OrderPlaced": 3},
        "invocations": {"place-order": 3},
        "dlq": {"reserve-dlq": 0},
        "aws_calls": 30,
        "aws_calls_per_order": 10.0,
        "invariants": invariants,
        "seconds": 1.5,
        "stack": "dev",
        "saga_mode": "both",
        "cancelled_at_step": {"payment": 1},
        "duplicates_delivered": 0,
        "function_errors": {},
        "virtual_seconds": 4.0,
        "deploy_seconds": 1.0,
        "run_seconds": 0.5,
    }


def test_a_false_invariant_gives_exit_status_1_and_is_named_with_its_problem() -> None:
    result = demo.DemoResult(
        _report(every_order_final=True, inventory_conserved=False),
        problems={"inventory_conserved": ["sku-mug: available 3 + reserved 0 != initial 2"]},
    )
    assert result.exit_status == 1
    text = demo.render(result)
    assert "    FAIL inventory_conserved\n" in text
    assert "sku-mug: available 3 + reserved 0 != initial 2" in text
    assert "    ok   every_order_final\n" in text


def test_the_report_names_the_faults_injected() -> None:
    report = {**_report(every_order_final=True), "faults": {"lost-reply": 17, "throttle": 0}}
    assert "  faults injected: lost-reply 17, throttle 0\n" in demo.render(demo.DemoResult(report))
    assert "faults injected" not in demo.render(demo.DemoResult(_report(every_order_final=True)))


def test_all_invariants_true_give_exit_status_0() -> None:
    result = demo.DemoResult(_report(every_order_final=True, inventory_conserved=True))
    assert result.exit_status == 0
    text = demo.render(result)
    assert "FAIL" not in text
    assert "completed 2   cancelled 1   stuck 0" in text
    assert "cancelled at: payment 1" in text


# ----------------------------------------------------------------------- command line


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--fail-rate", "2"], "argument --fail-rate: 2 is not within 0..1"),
        (["--duplicate-rate", "-0.5"], "argument --duplicate-rate: -0.5 is not within 0..1"),
        (["--orders", "0"], "argument --orders: 0 is not a whole number >= 1"),
        (["--saga", "sideways"], "argument --saga: invalid choice: 'sideways'"),
        # Not a number at all: the same words, not the parser's function name.
        (["--fail-rate", "x"], "argument --fail-rate: x is not within 0..1"),
        (["--orders", "many"], "argument --orders: many is not a whole number >= 1"),
        (
            ["--concurrency-quota", "0"],
            "argument --concurrency-quota: 0 is not a whole number >= 1 (the account's Lambda "
            "concurrent executions quota; AWS's usual one is 1000)",
        ),
        (["--concurrency-quota", "ten"], "argument --concurrency-quota: ten is not a whole"),
    ],
)
def test_bad_options_exit_2_naming_the_flag_and_what_is_allowed(
    args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        cli(["demo", *args])
    assert exited.value.code == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize(
    ("fault", "message"),
    [
        ("lost-replies=1", "argument --fault: fault 'lost-replies=1': unknown name 'lost-replies'"),
        ("throttle=2", "argument --fault: fault 'throttle=2': value '2' must be a probability"),
        ("outage@events=60", "must be START+DURATION in virtual seconds"),
    ],
)
def test_a_fault_that_cannot_be_injected_exits_2_naming_what_is_wrong(
    fault: str, message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        cli(["demo", "--fault", "throttle@dynamodb=0.1", "--fault", fault])
    assert exited.value.code == 2
    assert message in capsys.readouterr().err


def test_faults_reach_the_session_and_a_target_not_deployed_exits_2(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`--fault` options (repeatable, in order) are the session's faults; a TARGET the
    deployed stack does not have is the session's FaultError, exit status 2."""
    seen: dict[str, Any] = {}

    class Deployed:
        def __init__(self, stack: str, **kwargs: Any) -> None:
            seen.update(kwargs)
            self.plan = FaultPlan.parse(kwargs["faults"], seed=kwargs["seed"])

        def __enter__(self) -> Deployed:  # what SandboxSession.start checks after the deploy
            self.plan.validate_targets(["place-order", "ship-order-task"])
            return self

        def __exit__(self, *exc: object) -> None:
            pass

    monkeypatch.setattr(demo, "OrderSagaSession", Deployed)
    faults = ["throttle@dynamodb=0.1", "lost-reply@shipping=1"]
    code = cli(["demo", "--json", "--seed", "3", *(f"--fault={f}" for f in faults)])
    assert code == 2
    assert seen["faults"] == tuple(faults) and seen["seed"] == 3
    assert (
        "error: fault 'lost-reply@shipping=1': unknown TARGET 'shipping'; allowed: a function "
        "(place-order, ship-order-task) or a service (lambda)"
    ) in capsys.readouterr().err


def test_a_stack_reserving_more_than_the_accounts_quota_allows_exits_2_with_lambdas_error(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """prod reserves concurrency; an account whose quota is 100 can reserve none of it
    (Lambda keeps 100 unreserved): the deploy fails at the first reservation, as on AWS,
    before any order is placed."""
    assert cli(["demo", "--stack", "prod", "--json", "--concurrency-quota", "100"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert (
        "when calling the PutFunctionConcurrency operation: Specified "
        "ReservedConcurrentExecutions for function decreases account's "
        "UnreservedConcurrentExecution below its minimum value of [100]."
    ) in captured.err
    assert captured.err.startswith("error: creating aws:lambda/function:Function ")


def test_an_unknown_stack_exits_2_naming_the_stacks_there(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert cli(["demo", "--stack", "staging", "--json"]) == 2
    captured = capsys.readouterr()
    assert "error: no stack file Pulumi.staging.yaml; stacks here: dev, prod" in captured.err
    assert captured.out == ""


def test_stock_without_an_orders_file_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    stock = tmp_path / "stock.json"
    stock.write_text('{"sku-mug": 3}')
    with pytest.raises(SystemExit) as exited:
        cli(["demo", "--stock", str(stock)])
    assert exited.value.code == 2
    assert "--stock: only with --orders-file" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exited:
        cli(["demo", "--orders", "3", "--orders-file", str(stock)])
    assert exited.value.code == 2
    assert "not allowed with argument --orders" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("orders", "stock", "message"),
    [
        (None, '{"sku-mug": 3}', "--orders-file {dir}/missing.jsonl: cannot read it"),
        (b"\xff\xfe{}\n", '{"sku-mug": 3}', "--orders-file {dir}/orders.jsonl: not UTF-8 text"),
        (b"\n  \n", '{"sku-mug": 3}', "--orders-file {dir}/orders.jsonl: no requests in it"),
        (b"{}", "[1]", "--stock {dir}/stock.json: expected a JSON object of SKU to units"),
        (b"{}", '{"sku-mug": -1}', "--stock {dir}/stock.json: 'sku-mug': -1 is not a whole"),
        (b"{}", '{"sku-mug": true}', "--stock {dir}/stock.json: 'sku-mug': true is not a"),
        (b"{}", '{"sku-mug": NaN}', "--stock {dir}/stock.json: not JSON (NaN is not a JSON"),
    ],
)
def test_an_orders_or_stock_file_that_cannot_be_read_exits_2_before_deploying(
    tmp_path: Path,
    orders: bytes | None,
    stock: str,
    message: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    orders_path = tmp_path / ("missing.jsonl" if orders is None else "orders.jsonl")
    if orders is not None:
        orders_path.write_bytes(orders)
    (tmp_path / "stock.json").write_text(stock)
    args = ["demo", "--orders-file", str(orders_path), "--stock", str(tmp_path / "stock.json")]
    assert cli(args) == 2
    captured = capsys.readouterr()
    assert f"error: {message.format(dir=tmp_path)}" in captured.err
    assert "deploying" not in captured.err


def test_an_orders_file_is_placed_line_by_line_and_refusals_are_listed(tmp_path: Path) -> None:
    """A real run of your own orders: a byte-order mark does not lose the first line,
    blank lines are skipped, a line that is not JSON and one place-order refuses are
    listed by line number (from 1) with their reasons, and the invariants cover every
    order placed: the stock file's 3 mugs go to the first orders that ask."""
    mug = {"sku": "sku-mug", "quantity": 2, "unitPriceCents": 1500}
    lines = [
        json.dumps({"clientRequestId": "mine-1", "customerId": "customer-001", "items": [mug]}),
        "",
        "{not json",
        json.dumps({"clientRequestId": "mine-2", "customerId": "customer-002", "items": [mug]}),
        json.dumps({"clientRequestId": "mine-3", "customerId": "customer-003", "items": []}),
    ]
    orders_path = tmp_path / "orders.jsonl"
    orders_path.write_bytes(b"\xef\xbb\xbf" + "\n".join(lines).encode())
    stock_path = tmp_path / "stock.json"
    stock_path.write_text('{"sku-mug": 3}')
    out = io.StringIO()
    # No simulated carrier or provider failures (dev's shippingFailureRate is 0.1, drawn
    # per random order id): the first order completes, the second finds no stock left.
    options = demo.DemoOptions(
        json=True,
        orders_file=orders_path,
        stock_file=stock_path,
        saga="orchestration",
        fail_rate=0.0,
    )
    status = demo.main(options, out=out, err=io.StringIO())
    report = json.loads(out.getvalue())
    assert status == 0, report.get("problems")
    assert all(report["invariants"].values())
    assert "every_order_accepted" not in report["invariants"]
    assert report["orders"] == 3
    assert (report["completed"], report["cancelled"], report["stuck"]) == (1, 1, 0)
    assert report["events"]["OrderPlaced"] == 2
    rejected = report["rejected"]
    assert [r["line"] for r in rejected] == [3, 5]
    assert rejected[0]["error"].startswith("not JSON: ")
    assert "items" in rejected[1]["error"]


def test_demo_json_prints_one_report_and_exits_0() -> None:
    """A real run: one JSON object on stdout (nothing else), every order final, the
    counts consistent with each other, every invariant true, no progress bar."""
    result = subprocess.run(
        [sys.executable, "-m", "order_saga", "demo", "--orders", "6", "--json"],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": "functions"},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    (line,) = result.stdout.splitlines()
    report = json.loads(line)
    assert set(report) >= REQUIRED_KEYS
    assert set(report["invariants"]) >= REQUIRED_INVARIANTS
    assert all(report["invariants"].values()), report["invariants"]
    assert report["orders"] == 6
    assert report["completed"] + report["cancelled"] == 6
    assert report["stuck"] == 0
    assert report["events"]["OrderPlaced"] == 6
    assert report["events"].get("OrderCompleted", 0) == report["completed"]
    assert report["events"].get("OrderCancelled", 0) == report["cancelled"]
    assert report["invocations"]["place-order"] == 6
    assert report["dlq"] and not any(report["dlq"].values())
    assert report["aws_calls"] > 0
    assert report["aws_calls_per_order"] == round(report["aws_calls"] / 6, 1)
    assert report["seconds"] > 0
    assert "orders final" not in result.stderr


def _program_without(tmp_path: Path, requirement: str) -> Path:
    """A copy of the program whose layer lacks `requirement`: gone from the layer's
    requirements file and from the handler library's dependencies (its wheel would
    bring it back). The copy builds its layer into this checkout's cache."""
    copy = tmp_path / "program"
    copy.mkdir()
    for name in ("__main__.py", "Pulumi.yaml", "Pulumi.dev.yaml"):
        shutil.copy2(ROOT / name, copy / name)
    for folder in ("order_saga", "functions", "eventcraft"):
        shutil.copytree(ROOT / folder, copy / folder, ignore=shutil.ignore_patterns("__pycache__"))
    (ROOT / ".build").mkdir(exist_ok=True)
    (copy / ".build").symlink_to(ROOT / ".build")
    for listed in (copy / "functions" / "requirements.txt", copy / "eventcraft" / "pyproject.toml"):
        text = listed.read_text()
        kept = [line for line in text.splitlines(keepends=True) if requirement not in line]
        assert len(kept) == len(text.splitlines()) - 1, f"{requirement} is not listed in {listed}"
        listed.write_text("".join(kept))
    return copy


def test_a_module_the_layer_lacks_fails_the_demo_naming_the_function_and_the_module(
    tmp_path: Path,
) -> None:
    """Powertools is in the host's venv, not in this program's layer: the handlers that
    import it fail as in Lambda (eventcraft imports Powertools' batch tools when an SQS
    batch comes), and the report names each function, its handler and the module."""
    program = _program_without(tmp_path, "aws-lambda-powertools")
    paths = [program, program / "functions", ROOT / "components" / "src", ROOT / "sandbox" / "src"]
    # One saga (fewer resources to deploy): its first step already needs Powertools.
    demo_args = ["demo", "--orders", "1", "--saga", "choreography", "--json"]
    result = subprocess.run(
        [sys.executable, "-m", "order_saga", *demo_args],
        cwd=program,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(map(str, paths))},
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 1, result.stderr
    report = json.loads(result.stdout)
    assert report["invariants"]["every_handler_loaded"] is False
    problems = report["problems"]["every_handler_loaded"]
    assert (
        "reserve-inventory: handlers.reserve_inventory.handler: ModuleNotFoundError: "
        "No module named 'aws_lambda_powertools'"
    ) in problems, problems
    assert report["function_errors"]["reserve-inventory"] > 0


def test_a_fault_the_saga_absorbs_is_injected_counted_and_every_invariant_holds(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """End to end through `OrderSagaSession`: a third of every PutEvents' entries come
    back failed (InternalFailure), the publishers put them again, so every order
    still ends final with every invariant true; the report counts the failed entries."""
    code = cli(
        ["demo", "--orders", "3", "--seed", "1", "--json", "--fault", "putevents-partial=0.3"]
    )
    report = json.loads(capsys.readouterr().out)
    assert code == 0, report.get("problems")
    assert report["faults"]["putevents-partial"] > 0
    assert set(report["faults"]) == {"putevents-partial"}
    assert report["completed"] + report["cancelled"] == 3
    assert report["stuck"] == 0
    assert all(report["invariants"].values())


def test_a_dead_letter_problem_names_the_event_the_order_and_the_error() -> None:
    """What the report says of a non-empty DLQ: enough to find the order and the cause."""
    messages = [
        {
            "body": {"detail-type": "InventoryReserved", "detail": {"orderId": "order-1"}},
            "attributes": {},
            "receiveCount": 6,
        },
        {
            "body": {"detail-type": "OrderPlaced", "detail": {"orderId": "order-2"}},
            "attributes": {"ErrorMessage": "PoisonRecordError: orderId is missing"},
            "receiveCount": 1,
        },
        {"body": "{not json", "attributes": {}, "receiveCount": 5},
    ]
    assert demo.dead_letter_problem("payments-dlq", 3, messages) == (
        "payments-dlq: 3: InventoryReserved of order order-1, received 5 times before; "
        "OrderPlaced of order order-2, received 0 times before "
        "(PoisonRecordError: orderId is missing); "
        "a message that is not an EventBridge event, received 4 times before"
    )
    assert demo.dead_letter_problem("reserve-dlq", 1, []) == "reserve-dlq: 1"
