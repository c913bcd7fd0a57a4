"""Smoke test of the benchmarks: each runs with tiny sizes and returns results of the
documented shape (timings are never asserted: the machine is shared and noisy)."""

from __future__ import annotations

import contextlib
import copy
import json
import math
from pathlib import Path
from typing import Any

import pytest

from bench import cold_start, run
from bench import sandbox as sandbox_bench


@pytest.fixture(scope="module")
def results() -> dict[str, Any]:
    return run.run_all(run.ORDER, run.QUICK)


def _is_summary(value: Any) -> bool:
    return (
        set(value) >= {"median", "min", "max", "n", "samples"}
        and value["n"] == len(value["samples"]) >= 1
        and all(isinstance(s, float) and s >= 0 for s in value["samples"])
        and value["min"] <= value["median"] <= value["max"]
    )


def test_the_document_says_where_and_when(results: dict[str, Any]) -> None:
    machine = results["machine"]
    assert machine["nproc"] >= 1
    assert machine["python"].count(".") == 2
    assert machine["versions"]["moto"] == "5.2.5"
    assert set(results["benchmarks"]) == set(run.ORDER)
    assert set(results["durations_s"]) == set(run.ORDER)
    # results.json must be strict JSON (no NaN / Infinity).
    json.loads(json.dumps(run._jsonable(results), allow_nan=False))


def test_pattern_matching_compares_both_matchers(results: dict[str, Any]) -> None:
    result = results["benchmarks"]["pattern_matching"]
    matching = result["matching"]
    assert matching["events"] == run.QUICK["pattern_matching"]["event_count"]
    assert matching["rules"] == len(matching["matches_per_rule"]) >= 10
    assert _is_summary(matching["project_per_event"])
    assert _is_summary(matching["moto_per_event"])
    assert matching["ratio_moto_over_project"] > 0
    assert matching["pairs"] == matching["events"] * matching["rules"]
    assert 0 <= matching["disagreements"] <= matching["pairs"]
    compile_ = result["compile"]
    for key in ("project_first_call_per_rule", "project_cached_per_rule", "moto_load_per_rule"):
        assert _is_summary(compile_[key])


def test_conformance_counts_every_case(results: dict[str, Any]) -> None:
    conformance = results["benchmarks"]["pattern_matching"]["conformance"]
    rows = conformance["by_expected"]
    assert set(rows) == {"match", "no match", "invalid"}
    # 155 JSON5 files plus the two-file multi-key case.
    assert conformance["files"] == 157
    assert conformance["total"]["cases"] == sum(r["cases"] for r in rows.values()) == 156
    assert rows["invalid"]["cases"] == 38
    for who in ("project", "moto"):
        assert conformance["total"][who] == sum(r[who] for r in rows.values())
        assert len(conformance["wrong"][who]) == 156 - conformance["total"][who]
    # The project's matcher is the one the README documents as fully conformant.
    assert conformance["wrong"]["project"] == []


def test_cold_start_measures_each_handler_in_a_fresh_interpreter(results: dict[str, Any]) -> None:
    result = results["benchmarks"]["cold_start"]
    handlers = result["handlers"]
    assert set(handlers) == set(run.QUICK["cold_start"]["handlers"])
    row = handlers["outbox_relay"]
    assert _is_summary(row["import"])
    assert _is_summary(row["process_wall"])
    assert row["importtime_cumulative_ms"] > 0
    assert row["modules_loaded"] > 10
    assert set(row["libraries"]) == set(cold_start.HEAVY_LIBRARIES)
    assert row["heaviest_imports"]
    assert all({"package", "ms", "via"} <= set(h) for h in row["heaviest_imports"])
    assert [h["ms"] for h in row["heaviest_imports"]] == sorted(
        (h["ms"] for h in row["heaviest_imports"]), reverse=True
    )
    for finding in row["unused_imports"]:
        assert finding["kind"] in {"unused", "annotation-only"}
        assert finding["saving_ms"] >= 0
    assert set(result["references"]) == set(cold_start.REFERENCES)


def test_importtime_output_is_parsed_into_a_tree() -> None:
    stderr = "\n".join(
        [
            "import time: self [us] | cumulative | imported package",
            "import time:       100 |        100 |       pydantic_core",
            "import time:       200 |        300 |     pydantic",
            "import time:        50 |        350 |   contracts.base",
            "import time:        10 |         10 |   json",
            "import time:        20 |        380 | handlers.outbox_relay",
        ]
    )
    (root,) = cold_start.parse_importtime(stderr)
    assert root.name == "handlers.outbox_relay"
    assert [c.name for c in root.children] == ["contracts.base", "json"]
    assert root.children[0].children[0].children[0].name == "pydantic_core"
    groups = cold_start.heaviest_imports(root)
    assert groups["pydantic"]["us"] == 300
    assert groups["pydantic"]["via"] == {"contracts.base"}
    assert groups["json"]["us"] == 10
    assert groups["handlers (own code)"]["us"] == 20
    assert groups["contracts (own code)"]["us"] == 50


def test_publisher_counts_calls_of_both_variants(results: dict[str, Any]) -> None:
    result = results["benchmarks"]["publisher"]
    count = run.QUICK["publisher"]["count"]
    for bus in ("saga_rules_bus", "bare_bus"):
        row = result[bus]
        assert _is_summary(row["publisher"])
        assert _is_summary(row["naive"])
        assert row["publisher"]["published"] == row["naive"]["published"] == count
        assert row["publisher"]["calls"] == math.ceil(count / 10)
        assert row["naive"]["calls"] == count
        assert row["ratio_naive_over_publisher"] > 0
    assert result["saga_rules_bus"]["rules_on_bus"] >= 10
    assert result["bare_bus"]["rules_on_bus"] == 0
    size = result["size_aware"]
    assert size["requests"] > math.ceil(count / 10)  # 40 KB entries: fewer than 10 a request
    assert size["largest_request_entries"] * size["entry_bytes"] < size["max_request_bytes"]


def test_eventstore_reads_less_with_snapshots(results: dict[str, Any]) -> None:
    result = results["benchmarks"]["eventstore"]
    events = run.QUICK["eventstore"]["events"]
    policies = run.QUICK["eventstore"]["policies"]
    for variants in (result["memory"], result["moto"]["variants"]):
        assert set(variants) == {"none", *(f"every-{p}" for p in policies)}
        assert variants["none"]["events_read"] == variants["none"]["items_read"] == events
        assert variants["none"]["snapshot_read"] is False
        for every in policies:
            row = variants[f"every-{every}"]
            # The policy's worst case: the snapshot is every - 1 events behind.
            assert row["events_read"] == every - 1
            assert row["items_read"] == every
            assert row["snapshot_read"] is True
            assert row["snapshot_gets"] == 1
        for row in variants.values():
            assert row["version"] == events
            assert row["same_state_as_full_rebuild"] is True
            assert _is_summary(row["time"])
    assert variants["none"]["query_items"] == events
    assert [p["table_items"] for p in result["moto"]["append_probe"]] == [0, 50]
    history = result["history_reducer_memory"]
    assert history["state_json_bytes"] > 0
    assert history["snapshot_fits_in_dynamodb"] is True  # 250 events: far below 400 KB


def test_sandbox_compares_moto_with_and_without_speedups(results: dict[str, Any]) -> None:
    result = results["benchmarks"]["sandbox"]
    sizes = run.QUICK["sandbox"]
    calls = result["dynamodb_calls"]
    assert calls["partition_items"] == sizes["partition_items"]
    assert set(calls["calls"]) == {"PutItem", "UpdateItem", "Query"}
    for row in calls["calls"].values():
        assert _is_summary(row["plain"])
        assert _is_summary(row["speedups"])
        assert row["plain"]["n"] == row["speedups"]["n"] == sizes["rounds"]
        assert row["ratio_plain_over_speedups"] > 0
    assert calls["calls"]["Query"]["items_returned"] == sizes["partition_items"]
    assert "Attributes" in calls["calls"]["UpdateItem"]["answer_keys"]  # ALL_NEW
    assert calls["answers_equal"] is True
    assert calls["event_item_bytes"] > 500  # a nested map of realistic size
    tx = result["transactions"]
    rows = list(tx["sizes"].values())
    assert [r["table_items"] for r in rows] == list(sizes["table_sizes"])
    for row in rows:
        assert row["table_items_after"] == row["table_items"]  # fixed keys: no growth
        assert _is_summary(row["plain"])
        assert _is_summary(row["speedups"])
        assert row["plain"]["n"] == sizes["transaction_rounds"]
        assert row["answers_equal"] is True
    assert tx["actions_per_transaction"] == 2
    assert tx["cancelled_error"] == "TransactionCanceledException"
    assert tx["cancelled_reasons"] == ["None", "ConditionalCheckFailed"]
    assert tx["cancelled_same_in_both_modes"] is True
    assert tx["growth_plain_large_over_small"] > 0


def test_sandbox_runs_the_demo_end_to_end(results: dict[str, Any]) -> None:
    demo = results["benchmarks"]["sandbox"]["demo"]
    (orders,) = run.QUICK["sandbox"]["demo_orders"]
    assert demo["order"] == [f"{orders}/speedups"]
    assert demo["plain"] == {}
    assert demo["comparisons"] == {}
    row = demo["speedups"][str(orders)]
    assert row["orders"] == orders
    assert row["completed"] + row["cancelled"] == orders
    assert row["stuck"] == 0
    assert row["invariants_all_true"] is True
    assert all(row["invariants"].values())
    assert row["aws_calls"] > 0
    assert row["aws_calls_per_order"] == row["aws_calls"] / orders
    assert row["events"] > 0
    assert row["invocations"] > 0
    assert row["cpu_seconds"] == pytest.approx(
        row["cpu_deploy_seconds"] + row["cpu_after_deploy_seconds"]
    )
    assert row["cpu_deploy_seconds"] > 0
    assert row["cpu_after_deploy_seconds"] > 0


def test_the_plain_demo_replaces_speedups_for_its_run_only() -> None:
    import eventcraft_sandbox.session

    original = eventcraft_sandbox.session.speedups
    with sandbox_bench.speedups_disabled():
        assert eventcraft_sandbox.session.speedups is contextlib.nullcontext
    assert eventcraft_sandbox.session.speedups is original


def test_the_sandbox_table_shows_the_plain_demo_and_the_ratio(results: dict[str, Any]) -> None:
    result = copy.deepcopy(results["benchmarks"]["sandbox"])
    demo = result["demo"]
    (key,) = demo["speedups"]
    demo["plain"][key] = {**demo["speedups"][key], "mode": "plain"}
    demo["order"].append(f"{key}/plain")
    demo["comparisons"][key] = {f"ratio_{m}": 1.0 for m in sandbox_bench.DEMO_MEASURES}
    table = "\n".join(run._render_sandbox(result))
    assert f"| on | {key} |" in table
    assert f"| off | {key} |" in table
    assert f"Whole demo at {key} orders, plain / speedups: wall 1.0x" in table


def test_the_tables_render_every_benchmark(results: dict[str, Any]) -> None:
    table = run.render(results)
    for heading in ("### 1.", "### 2.", "### 3.", "### 4.", "### 5."):
        assert heading in table
    assert "| outbox_relay |" in table
    assert "| **total** | 156 |" in table
    assert "Same answers in both modes (every call, every round): yes." in table


def test_main_writes_results_and_merges_only_runs(tmp_path: Path, results: dict[str, Any]) -> None:
    output = tmp_path / "results.json"
    previous = {"benchmarks": {"publisher": results["benchmarks"]["publisher"]}}
    output.write_text(json.dumps(run._jsonable(previous)))
    assert run.main(["--quick", "--only", "pattern_matching", "--output", str(output)]) == 0
    written = json.loads(output.read_text())
    assert written["benchmarks"]["publisher"] == run._jsonable(results["benchmarks"]["publisher"])
    assert written["benchmarks"]["pattern_matching"]["conformance"]["total"]["cases"] == 156
    assert "pattern_matching" in written["machine_per_benchmark"]


def test_the_readme_block_is_replaced_between_its_markers(tmp_path: Path) -> None:
    readme = tmp_path / "README.md"
    readme.write_text(f"intro\n{run.README_START}\nold\n{run.README_END}\noutro\n")
    assert run.update_readme("new table\n", readme) is True
    assert readme.read_text() == f"intro\n{run.README_START}\nnew table\n{run.README_END}\noutro\n"
    assert run.update_readme("x", tmp_path / "missing.md") is False
