"""Benchmark 1: EventBridge pattern matching, the project's matcher vs moto's.

Matchers:
* project: `pulumi_eventcraft.event_pattern.compile_pattern(p).matches(event)` (validated and
  compiled once, cached by the pattern's JSON text);
* moto: `moto.events.models.EventPattern.load(text).matches_event(event)`, what moto
  5.2.5 runs for every rule of a bus on each PutEvents entry.

Workload: the order-saga rule set (`RULES`: detail-type lists, numeric ranges, suffix
routing, `$or`, prefix, exists, an array of objects) against events built from the
contracts' own samples (`contracts.samples.sample_event`) with varied totals,
currencies, SKUs and checks. One pass matches every event against every rule; the
per-event figure is one pass divided by the number of events (i.e. the cost of routing
one event through the whole rule set). Passes of the two matchers are interleaved.

Also: the first-call (validate + compile) cost of the rule set vs a cached
`compile_pattern`, vs moto's `EventPattern.load`; how often the two matchers disagree
on the workload; and the conformance side note: how many of the cases in
shared/conformance/eventbridge-patterns each one gets right.
"""

from __future__ import annotations

import json
import random
from collections import Counter
from pathlib import Path
from typing import Any

from bench import common

SAGA_TYPES = [
    "OrderPlaced",
    "InventoryReserved",
    "InventoryReservationFailed",
    "PaymentProcessed",
    "PaymentFailed",
    "OrderShipped",
    "ShippingFailed",
    "PaymentRefunded",
    "InventoryReleased",
    "OrderCancelled",
    "OrderCompleted",
]
HIGH_VALUE_THRESHOLD_CENTS = 100_000


def rules() -> dict[str, dict[str, Any]]:
    """The order-saga's routing rules: name -> EventBridge pattern."""
    from domain.enrichment import high_value_pattern

    return {
        # Choreography: each step's trigger (detail-type lists, pinned source).
        "reserve-inventory": {"source": ["order-saga.orders"], "detail-type": ["OrderPlaced"]},
        "process-payment": {
            "source": ["order-saga.inventory"],
            "detail-type": ["InventoryReserved"],
        },
        "ship-order": {"source": ["order-saga.payments"], "detail-type": ["PaymentProcessed"]},
        "refund-payment": {"detail-type": ["ShippingFailed"]},
        "release-inventory": {"detail-type": ["PaymentFailed", "PaymentRefunded"]},
        "saga-progress": {"source": [{"prefix": "order-saga."}], "detail-type": SAGA_TYPES},
        # Content-based routing on the amount (numeric, and a range).
        "high-value-review": high_value_pattern(HIGH_VALUE_THRESHOLD_CENTS),
        "standard-orders": {
            "detail-type": ["OrderPlaced"],
            "detail": {"totalCents": [{"numeric": [">", 0, "<=", HIGH_VALUE_THRESHOLD_CENTS]}]},
        },
        # Suffix routing: every failure to the alerting queue, every payment event to audit.
        "failures-alert": {"detail-type": [{"suffix": "Failed"}]},
        "payments-audit": {"source": [{"suffix": ".payments"}]},
        # $or: very large orders, or a currency outside the usual three, go to fraud review.
        "fraud-screen": {
            "detail-type": ["OrderPlaced"],
            "$or": [
                {"detail": {"totalCents": [{"numeric": [">=", 500_000]}]}},
                {"detail": {"currency": [{"anything-but": ["USD", "EUR", "GBP"]}]}},
            ],
        },
        "enrich-order": {
            "detail-type": ["OrderPlaced"],
            "detail": {"customerId": [{"exists": True}]},
        },
        "fork-join-checks": {
            "detail-type": ["CheckCompleted"],
            "detail": {"check": ["inventory", "credit", "shippingQuote"]},
        },
        "record-history": {
            "source": [{"prefix": "order-saga."}],
            "detail": {"orderId": [{"exists": True}]},
        },
        "forward-partner": {
            "source": ["order-saga.shipping", "order-saga.orders"],
            "detail-type": ["OrderShipped", "OrderCancelled"],
        },
        # Inside an array of objects (detail.items[].sku): gold SKUs to the concierge.
        "gold-sku-concierge": {
            "detail-type": ["OrderPlaced"],
            "detail": {"items": {"sku": [{"prefix": "sku-gold-"}]}},
        },
    }


def events(count: int, *, seed: int = 7) -> list[dict[str, Any]]:
    """`count` EventBridge events (deterministic): half OrderPlaced of varied size,
    currency and SKUs, the rest the other contracts' samples, checks varied."""
    from contracts.samples import sample_event

    rng = random.Random(seed)
    others = [
        *SAGA_TYPES[1:],
        "OrderEnriched",
        "HighValueOrderFlagged",
        "CheckCompleted",
        "AllChecksComplete",
    ]
    result: list[dict[str, Any]] = []
    for n in range(count):
        order_id = f"order-{n:05d}"
        if n % 2 == 0:
            lines: list[dict[str, Any]] = [
                {
                    "sku": rng.choice(["sku-red-mug", "sku-blue-pot", "sku-gold-lamp"]),
                    "quantity": rng.randint(1, 5),
                    "unitPriceCents": rng.choice([499, 1250, 4999, 25_000, 180_000]),
                }
                for _ in range(rng.randint(1, 4))
            ]
            total = sum(line["quantity"] * line["unitPriceCents"] for line in lines)
            result.append(
                sample_event(
                    "OrderPlaced",
                    orderId=order_id,
                    items=lines,
                    totalCents=total,
                    currency=rng.choice(["USD", "USD", "USD", "EUR", "GBP", "JPY"]),
                )
            )
        else:
            detail_type = rng.choice(others)
            overrides: dict[str, Any] = {"orderId": order_id}
            if detail_type == "CheckCompleted":
                overrides["check"] = rng.choice(["inventory", "credit", "shippingQuote"])
            result.append(sample_event(detail_type, **overrides))
    return result


def _moto_pattern_class() -> Any:
    from moto.events.models import EventPattern

    return EventPattern


def _matching(rounds: int, event_list: list[dict[str, Any]]) -> dict[str, Any]:
    from pulumi_eventcraft import event_pattern as ep

    moto_pattern = _moto_pattern_class()
    patterns = rules()
    compiled = [ep.compile_pattern(p) for p in patterns.values()]
    loaded = [moto_pattern.load(json.dumps(p)) for p in patterns.values()]

    def project_pass() -> int:
        return sum(1 for e in event_list for c in compiled if c.matches(e))

    def moto_pass() -> int:
        return sum(1 for e in event_list for m in loaded if m.matches_event(e))

    # Agreement (and per-rule hit counts) on the exact workload that is timed.
    hits: Counter[str] = Counter()
    moto_hits: Counter[str] = Counter()
    disagreements: Counter[str] = Counter()
    for e in event_list:
        for name, c, m in zip(patterns, compiled, loaded, strict=True):
            ours, theirs = c.matches(e), m.matches_event(e)
            hits[name] += ours
            moto_hits[name] += theirs
            if ours != theirs:
                disagreements[name] += 1

    project_times: list[float] = []
    moto_times: list[float] = []
    for _ in range(rounds):
        project_times.append(common.timed(project_pass)[0])
        moto_times.append(common.timed(moto_pass)[0])
    n = len(event_list)
    per_event_project = [t / n for t in project_times]
    per_event_moto = [t / n for t in moto_times]
    return {
        "events": n,
        "rules": len(patterns),
        "rounds": rounds,
        "project_per_event": common.summary(per_event_project),
        "moto_per_event": common.summary(per_event_moto),
        "project_per_match": common.median(per_event_project) / len(patterns),
        "moto_per_match": common.median(per_event_moto) / len(patterns),
        "ratio_moto_over_project": common.ratio(
            common.median(per_event_moto), common.median(per_event_project)
        ),
        "matches_per_rule": dict(hits),
        "moto_matches_per_rule": dict(moto_hits),
        "pairs": n * len(patterns),
        "disagreements": sum(disagreements.values()),
        "disagreements_per_rule": dict(disagreements),
    }


def _compiling(rounds: int, loops: int) -> dict[str, Any]:
    from pulumi_eventcraft import event_pattern as ep

    moto_pattern = _moto_pattern_class()
    texts = [json.dumps(p) for p in rules().values()]
    # The module's compile cache; cleared to measure a true first call.
    cache = ep._compile_cached

    def first_call() -> None:
        cache.cache_clear()
        for text in texts:
            ep.compile_pattern(text)

    def cached_call() -> None:
        for text in texts:
            ep.compile_pattern(text)

    def moto_load() -> None:
        for text in texts:
            moto_pattern.load(text)

    first: list[float] = []
    cached: list[float] = []
    moto: list[float] = []
    try:
        for _ in range(rounds):
            first.append(common.timed(first_call)[0] / len(texts))
            cached_call()  # warm
            cached.append(common.per_call(cached_call, loops) / len(texts))
            moto.append(common.per_call(moto_load, loops) / len(texts))
    finally:
        cache.cache_clear()
    return {
        "rounds": rounds,
        "project_first_call_per_rule": common.summary(first),
        "project_cached_per_rule": common.summary(cached),
        "moto_load_per_rule": common.summary(moto),
        "ratio_first_over_cached": common.ratio(common.median(first), common.median(cached)),
    }


def _expected(stem: str) -> str:
    if stem.endswith("_EXC"):
        return "invalid"
    if stem.endswith("_NEG"):
        return "no match"
    return "match"


def conformance_cases(folder: Path = common.CONFORMANCE_CASES) -> list[dict[str, Any]]:
    """Every case: name, expected outcome, event, and the pattern as JSON text (the
    multi-key case keeps its duplicate key, as EventBridge receives it)."""
    import json5

    cases: list[dict[str, Any]] = []
    for path in sorted(folder.glob("*.json5")):
        case = json5.loads(path.read_text(encoding="utf-8"))
        cases.append(
            {
                "name": path.stem,
                "expected": _expected(path.stem),
                "event": case["Event"],
                "pattern": json.dumps(case["EventPattern"]),
            }
        )
    event_file = folder / "complex_multi_key_event.json"
    pattern_file = folder / "complex_multi_key_event_pattern.json"
    if event_file.is_file() and pattern_file.is_file():
        cases.append(
            {
                "name": "complex_multi_key_event",
                "expected": "match",
                "event": json.loads(event_file.read_text(encoding="utf-8")),
                "pattern": pattern_file.read_text(encoding="utf-8"),
            }
        )
    return cases


def _project_outcome(pattern: str, event: dict[str, Any]) -> str:
    from pulumi_eventcraft.event_pattern import InvalidEventPatternError, compile_pattern

    try:
        compiled = compile_pattern(pattern)
    except InvalidEventPatternError:
        return "invalid"
    try:
        return "match" if compiled.matches(event) else "no match"
    except Exception as exc:
        return f"error: {type(exc).__name__}"


def _moto_outcome(pattern: str, event: dict[str, Any]) -> str:
    from moto.events.exceptions import InvalidEventPatternException

    moto_pattern = _moto_pattern_class()
    try:
        loaded = moto_pattern.load(pattern)
    except InvalidEventPatternException:
        return "invalid"
    try:
        return "match" if loaded.matches_event(event) else "no match"
    except Exception as exc:  # moto crashing on a pattern is a wrong answer, not a crash
        return f"error: {type(exc).__name__}"


def conformance(folder: Path = common.CONFORMANCE_CASES) -> dict[str, Any]:
    """Cases each matcher gets right, by expected outcome."""
    cases = conformance_cases(folder)
    files = sorted(p.name for p in folder.iterdir() if p.is_file()) if folder.is_dir() else []
    table: dict[str, dict[str, int]] = {}
    wrong: dict[str, list[str]] = {"project": [], "moto": []}
    for case in cases:
        row = table.setdefault(case["expected"], {"cases": 0, "project": 0, "moto": 0})
        row["cases"] += 1
        for who, outcome in (
            ("project", _project_outcome(case["pattern"], case["event"])),
            ("moto", _moto_outcome(case["pattern"], case["event"])),
        ):
            if outcome == case["expected"]:
                row[who] += 1
            else:
                wrong[who].append(f"{case['name']} (expected {case['expected']}, got {outcome})")
    total = {
        "cases": len(cases),
        "project": sum(r["project"] for r in table.values()),
        "moto": sum(r["moto"] for r in table.values()),
    }
    return {"files": len(files), "by_expected": table, "total": total, "wrong": wrong}


def run(
    *,
    event_count: int = 400,
    rounds: int = 15,
    compile_rounds: int = 15,
    compile_loops: int = 200,
    conformance_folder: Path = common.CONFORMANCE_CASES,
) -> dict[str, Any]:
    """The whole benchmark; sizes are parameters so the smoke test can run it tiny."""
    event_list = events(event_count)
    return {
        "matching": _matching(rounds, event_list),
        "compile": _compiling(compile_rounds, compile_loops),
        "conformance": conformance(conformance_folder),
    }
