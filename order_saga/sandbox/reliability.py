"""`python -m order_saga reliability`: the fault matrix, written to RELIABILITY.md.

    python -m order_saga reliability                       # every cell, 200 orders each
    python -m order_saga reliability --orders 20 --faults lost-reply,outage-events --jobs 2

Each row is a fault AWS really produces (`eventcraft_sandbox.faults`), each column a saga
mode; each cell is one `demo` run in a process of its own (moto's state is
process-wide), with `--redrive` (an operator redrives what was dead-lettered) and
`--json`, and says: orders run, faults injected, whether every invariant held (else
which did not), orders stuck, messages dead-lettered and redriven, events lost, and the
command that reproduces it. The exit status is 1 when a cell broke an invariant (or its
run failed), 0 otherwise.

A 200-order matrix takes hours on two cores, so each finished cell is also saved, as
soon as it ends, under `--cells-dir` (default `.build/reliability/`) with the commit it
ran at; `--resume` takes a saved cell instead of running it again when its command is
the same (a crash, a timeout or a stopped session loses only the cells under way).
RELIABILITY.md names the commit of every cell.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shlex
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from order_saga.sandbox.demo import whole_number as _whole

__all__ = ["MODES", "ROWS", "Cell", "Row", "main", "render", "run_cell"]

ROOT: Final = Path(__file__).resolve().parents[2]
DEFAULT_ORDERS: Final = 200
DEFAULT_SEED: Final = 1
MODES: Final = ("orchestration", "choreography")


@dataclass(frozen=True)
class Row:
    """A row of the matrix: its name (`--faults` picks rows by it), the `--fault`
    options of its cells, and what it stands for."""

    name: str
    faults: tuple[str, ...]
    means: str


ROWS: Final = (
    Row("none", (), "no fault: the baseline"),
    Row("lost-reply", ("lost-reply=0.2",), "20% of invocations: work done, reply lost"),
    Row("timeout-mid", ("timeout-mid=0.1",), "10% of invocations stopped after 1 write"),
    Row("throttle", ("throttle=0.3",), "30% of AWS calls throttled"),
    Row("putevents-partial", ("putevents-partial=0.2",), "20% of PutEvents entries fail"),
    Row("txn-conflict", ("txn-conflict=0.2",), "20% of transactions conflict"),
    Row("outage-events", ("outage@events=0+600",), "EventBridge down 10 min"),
    Row("outage-dynamodb", ("outage@dynamodb=0+300",), "DynamoDB down 5 min"),
    Row("redeliver", ("redeliver=0.3",), "30% of deliveries made twice"),
    Row("reorder", ("reorder=30",), "deliveries out of order within 30 s"),
    Row("concurrency", ("concurrency=4",), "up to 4 invocations of a function at once"),
)


@dataclass
class Cell:
    """One run: its row and mode, the command, and the demo's JSON report (None if the
    run failed: `error` says how)."""

    row: Row
    mode: str
    command: list[str]
    report: dict[str, Any] | None = None
    error: str = ""
    seconds: float = 0.0
    broken: list[str] = field(default_factory=list)
    commit: str = ""  # the code it ran at (`code_commit`)

    @property
    def ok(self) -> bool:
        return self.report is not None and not self.broken

    def shown_command(self) -> str:
        return shlex.join(["python", *self.command[1:]])

    def saved_as(self, cells_dir: Path) -> Path:
        """Where the cell is saved: named by its row, mode and a digest of its command."""
        digest = hashlib.sha256(json.dumps(self.command[1:]).encode()).hexdigest()[:12]
        return cells_dir / f"{self.row.name}-{self.mode}-{digest}.json"

    def save(self, cells_dir: Path) -> None:
        """Keep a finished cell (one with a report) for `--resume`."""
        if self.report is None:
            return
        cells_dir.mkdir(parents=True, exist_ok=True)
        saved = {
            "command": self.command[1:],
            "report": self.report,
            "seconds": self.seconds,
            "commit": self.commit,
        }
        staging = self.saved_as(cells_dir).with_suffix(".tmp")
        staging.write_text(json.dumps(saved), encoding="utf-8")
        staging.replace(self.saved_as(cells_dir))  # whole or not at all

    def load(self, cells_dir: Path) -> bool:
        """Take the saved run of this very command, if there is one."""
        try:
            saved = json.loads(self.saved_as(cells_dir).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return False
        if not isinstance(saved, dict) or saved.get("command") != self.command[1:]:
            return False
        self.report = saved["report"]
        self.seconds = float(saved.get("seconds", 0.0))
        self.commit = str(saved.get("commit", ""))
        self.broken = [name for name, ok in self.report["invariants"].items() if not ok]
        return True


def code_commit() -> str:
    """The commit the cells run at, `-dirty` when tracked files differ from it."""

    def git(*args: str) -> str:
        done = subprocess.run(  # noqa: S603 (git, our own arguments)
            ["git", *args],  # noqa: S607 (git from the PATH, as a developer runs it)
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=False,
        )
        return done.stdout.strip() if done.returncode == 0 else ""

    commit = git("rev-parse", "--short=12", "HEAD") or "unknown"
    return commit + ("-dirty" if git("status", "--porcelain", "--untracked-files=no") else "")


def cell_command(row: Row, mode: str, *, orders: int, seed: int) -> list[str]:
    command = [sys.executable, "-m", "order_saga", "demo", "--saga", mode]
    command += ["--orders", str(orders), "--seed", str(seed), "--redrive", "--json"]
    for fault in row.faults:
        command += ["--fault", fault]
    return command


def run_cell(cell: Cell, *, timeout: float) -> Cell:
    """Run the cell's command; read its report."""
    started = time.perf_counter()
    try:
        done = subprocess.run(  # noqa: S603 (our own interpreter and options)
            cell.command, cwd=ROOT, capture_output=True, text=True, timeout=timeout, check=False
        )
    except subprocess.TimeoutExpired:
        cell.error = f"did not finish in {timeout:.0f} s"
        return cell
    finally:
        cell.seconds = time.perf_counter() - started
    lines = done.stdout.strip().splitlines()
    try:
        cell.report = json.loads(lines[-1]) if lines else None
    except ValueError:
        cell.report = None
    if cell.report is None:
        tail = done.stderr.strip().splitlines()[-3:]
        cell.error = f"exit {done.returncode}: " + (" | ".join(tail) or "no report")
        return cell
    cell.broken = [name for name, ok in cell.report["invariants"].items() if not ok]
    return cell


# ------------------------------------------------------------------------ report


def _summary(cell: Cell) -> str:
    r = cell.report
    if r is None:
        return f"run failed: {cell.error}"
    verdict = "all invariants hold" if not cell.broken else "BROKEN: " + ", ".join(cell.broken)
    injected = sum((r.get("faults") or {}).values())
    return (
        f"{r['orders']} orders ({r.get('cancelled', 0)} cancelled), {injected} injected, "
        f"{verdict}, {r['stuck']} stuck, "
        f"{r.get('dead_lettered', 0)} dead-lettered / {r.get('redriven', 0)} redriven, "
        f"{r.get('events_lost', 0)} lost"
    )


def _mark(cell: Cell) -> str:
    r = cell.report
    if r is None:
        return "run failed"
    injected = sum((r.get("faults") or {}).values())
    verdict = "ok" if not cell.broken else "**BROKEN**"
    return (
        f"{verdict} · {r['orders']} orders · {r.get('cancelled', 0)} cancelled · "
        f"{injected} injected · {r['stuck']} stuck · "
        f"{r.get('dead_lettered', 0)}/{r.get('redriven', 0)} DLQ/redriven · "
        f"{r.get('events_lost', 0)} lost"
    )


def render(cells: Sequence[Cell], *, orders: int, seed: int, modes: Sequence[str]) -> str:
    """RELIABILITY.md: the matrix, then each cell's detail and command."""
    by_key = {(c.row.name, c.mode): c for c in cells}
    rows = list(dict.fromkeys(c.row for c in cells))
    lines = [
        "# Reliability: every fault AWS produces, every saga mode",
        "",
        "Generated by `python -m order_saga reliability"
        + (f" --orders {orders}" if orders != DEFAULT_ORDERS else "")
        + (f" --seed {seed}" if seed != DEFAULT_SEED else "")
        + "` (do not edit by hand). Each cell is one sandbox run of the order saga",
        "(`python -m order_saga demo`) with the row's fault injected, seeded, on the virtual",
        "clock; when the run is quiet an operator's redrive of every DLQ (`ops dlq redrive`)",
        "and another run follow. A cell is ok when every invariant of the demo holds:",
        "money and stock (per SKU on hand + reserved + shipped = initial; per order charged",
        "- refunded = its total if completed and 0 if cancelled; no refund or release after",
        "shipping), one outcome per order by event id, every order final, every outbox row",
        "published, no event lost, nothing left in a DLQ after the redrive.",
        "",
        "Cell: verdict · orders · orders cancelled (a fault should cancel no more orders than",
        "the baseline row: out of stock, declined, undeliverable) · faults injected · orders",
        "stuck · messages dead-lettered / redriven · events lost.",
        "",
        "| fault | " + " | ".join(modes) + " |",
        "|---|" + "---|" * len(modes),
    ]
    for row in rows:
        marks = [_mark(by_key[(row.name, m)]) if (row.name, m) in by_key else "" for m in modes]
        faults = ", ".join(f"`{f}`" for f in row.faults) or "none"
        lines.append(f"| {row.name} ({faults}): {row.means} | " + " | ".join(marks) + " |")
    lines += ["", "## Cells", ""]
    for cell in cells:
        lines.append(f"- **{cell.row.name} / {cell.mode}**: {_summary(cell)}.")
        if cell.report and cell.report.get("faults"):
            counted = ", ".join(f"{k} {v}" for k, v in cell.report["faults"].items())
            lines.append(f"  Injected: {counted}.")
        if cell.report and cell.broken:
            for name in cell.broken:
                for problem in (cell.report.get("problems") or {}).get(name, [])[:3]:
                    lines.append(f"  {name}: {problem}")
        lines.append(f"  Reproduce: `{cell.shown_command()}`")
        if cell.commit:
            lines.append(f"  Ran at commit {cell.commit}, in {cell.seconds:.0f} s.")
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------------ command line


def _rows(text: str) -> tuple[Row, ...]:
    names = [n.strip() for n in text.split(",") if n.strip()]
    known = {row.name: row for row in ROWS}
    unknown = [n for n in names if n not in known]
    if unknown or not names:
        raise argparse.ArgumentTypeError(
            f"{text!r}: allowed rows are {', '.join(known)} (comma-separated)"
        )
    return tuple(known[n] for n in names)


def _modes(text: str) -> tuple[str, ...]:
    names = tuple(n.strip() for n in text.split(",") if n.strip())
    if not names or any(n not in MODES for n in names):
        raise argparse.ArgumentTypeError(f"{text!r}: allowed modes are {', '.join(MODES)}")
    return names


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--orders",
        type=_whole,
        default=DEFAULT_ORDERS,
        help=f"orders per cell (default {DEFAULT_ORDERS})",
    )
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED, help="seed of every cell")
    parser.add_argument(
        "--faults", type=_rows, default=ROWS, help="rows to run, comma-separated (default all)"
    )
    parser.add_argument(
        "--modes", type=_modes, default=MODES, help="saga modes (columns), comma-separated"
    )
    parser.add_argument("--jobs", type=_whole, default=1, help="cells run at once (default 1)")
    parser.add_argument(
        "--timeout", type=_whole, default=3600, help="seconds a cell may take (default 3600)"
    )
    parser.add_argument(
        "--cells-dir",
        type=Path,
        default=ROOT / ".build" / "reliability",
        help="where each finished cell is saved (default .build/reliability)",
    )
    parser.add_argument(
        "--resume",
        action="store_true",
        help="take the saved cells of the same commands instead of running them again",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=ROOT / "RELIABILITY.md",
        help="where to write the report (default RELIABILITY.md; '-' for stdout)",
    )


def main(parsed: argparse.Namespace, *, err: Callable[[str], None] | None = None) -> int:
    say = err or (lambda text: print(text, file=sys.stderr, flush=True))
    cells = [
        Cell(row, mode, cell_command(row, mode, orders=parsed.orders, seed=parsed.seed))
        for row in parsed.faults
        for mode in parsed.modes
    ]
    commit = code_commit()
    resumed = [cell for cell in cells if parsed.resume and cell.load(parsed.cells_dir)]
    to_run = [cell for cell in cells if cell not in resumed]
    say(
        f"{len(cells)} cells, {parsed.orders} orders each, {parsed.jobs} at a time"
        + (f"; {len(resumed)} saved ones taken" if resumed else "")
    )

    def run(cell: Cell) -> Cell:
        cell.commit = commit
        run_cell(cell, timeout=parsed.timeout)
        cell.save(parsed.cells_dir)
        say(f"  {cell.row.name} / {cell.mode}: {_summary(cell)} ({cell.seconds:.0f} s)")
        return cell

    with ThreadPoolExecutor(max_workers=parsed.jobs) as pool:
        list(pool.map(run, to_run))
    text = render(cells, orders=parsed.orders, seed=parsed.seed, modes=parsed.modes)
    if str(parsed.out) == "-":
        sys.stdout.write(text)
    else:
        parsed.out.write_text(text, encoding="utf-8")
        say(f"wrote {parsed.out}")
    return 0 if all(cell.ok for cell in cells) else 1
