"""Benchmark 3: publishing throughput against moto, eventcraft's Publisher vs a naive loop.

Both put the same `count` PutEvents entries (contract events of the saga, built with
`eventcraft.publisher.entry` from the contracts' samples) on the same moto event bus,
through the same boto3 client (botocore "standard" retries, as `eventcraft.clients`):
* publisher: `Publisher(bus, client=...).put_entries(entries)`: requests of at most 10
  entries and < 256 KB, per-entry failure handling;
* naive: `client.put_events(Entries=[entry])` once per entry, ignoring the result.

The bus carries the order-saga rule set (`bench.pattern_matching.rules`) so moto
matches every entry against every rule, as a real bus would; the rules have no targets:
moto 5.2.5's SQS delivery is O(queue depth) per message and parses a JSONPath grammar
for every delivered event (~20 ms per event here), which would measure moto, not the
publisher. Runs of the two variants alternate. PutEvents calls are counted with a
botocore `before-call` hook. The size-aware side note counts the requests the Publisher
splits large entries into (pure computation, nothing sent).
"""

from __future__ import annotations

import json
from typing import Any

from bench import common

BUS = "bench-saga-bus"
LARGE_DETAIL_BYTES = 40 * 1024


def entries(count: int, *, bus: str = BUS) -> list[dict[str, Any]]:
    """`count` PutEvents entries of contract events (deterministic mix of the saga)."""
    from bench.pattern_matching import events
    from contracts.registry import model_for
    from eventcraft.publisher import entry

    result: list[dict[str, Any]] = []
    for envelope in events(count):
        model = model_for(envelope["detail-type"]).model_validate(envelope["detail"])
        result.append(dict(entry(model, bus_name=bus)))
    return result


def _client() -> Any:
    import boto3
    from botocore.config import Config

    # As eventcraft.clients creates it; a session of its own.
    return boto3.session.Session().client("events", config=Config(retries={"mode": "standard"}))


class _CallCounter:
    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, **_: Any) -> None:
        self.calls += 1


def _create_bus(client: Any, with_rules: bool) -> None:
    from bench.pattern_matching import rules

    client.create_event_bus(Name=BUS)
    if with_rules:
        for name, pattern in rules().items():
            client.put_rule(Name=name, EventBusName=BUS, EventPattern=json.dumps(pattern))


def size_aware_requests(count: int, detail_bytes: int = LARGE_DETAIL_BYTES) -> dict[str, Any]:
    """Requests the Publisher makes for `count` entries of about `detail_bytes` each."""
    from eventcraft.publisher import MAX_REQUEST_BYTES, entry_size, request_chunks

    big = {
        "Source": "order-saga.orders",
        "DetailType": "OrderPlaced",
        "Detail": json.dumps({"blob": "x" * (detail_bytes - 12)}),
        "EventBusName": BUS,
    }
    items = [big] * count
    chunks = list(request_chunks(items, range(count)))  # type: ignore[arg-type]
    return {
        "entries": count,
        "entry_bytes": entry_size(big),  # type: ignore[arg-type]
        "max_request_bytes": MAX_REQUEST_BYTES,
        "requests": len(chunks),
        "largest_request_entries": max(len(c) for c in chunks),
        "naive_requests": count,
    }


def _measure(items: list[Any], repeats: int, with_rules: bool) -> dict[str, Any]:
    from moto import mock_aws

    from eventcraft.publisher import Publisher

    count = len(items)
    publisher_s: list[float] = []
    naive_s: list[float] = []
    publisher_calls = naive_calls = published = naive_ok = 0
    with mock_aws():
        client = _client()
        _create_bus(client, with_rules)
        counter = _CallCounter()
        client.meta.events.register("before-call.events.PutEvents", counter)
        publisher = Publisher(BUS, client=client)

        def naive() -> int:
            ok = 0
            for item in items:
                response = client.put_events(Entries=[item])
                ok += response.get("FailedEntryCount", 0) == 0
            return ok

        client.put_events(Entries=items[:1])  # warm: first-call setup of client and moto
        for _ in range(repeats):
            counter.calls = 0
            seconds, ids = common.timed(lambda: publisher.put_entries(items))
            publisher_s.append(seconds)
            publisher_calls, published = counter.calls, len(ids)

            counter.calls = 0
            seconds, naive_ok = common.timed(naive)
            naive_s.append(seconds)
            naive_calls = counter.calls

    p, n = common.median(publisher_s), common.median(naive_s)
    return {
        "rules_on_bus": len(_rule_names()) if with_rules else 0,
        "publisher": {
            **common.summary(publisher_s),
            "calls": publisher_calls,
            "published": published,
            "per_event": p / count if count else float("nan"),
        },
        "naive": {
            **common.summary(naive_s),
            "calls": naive_calls,
            "published": naive_ok,
            "per_event": n / count if count else float("nan"),
        },
        "ratio_naive_over_publisher": common.ratio(n, p),
    }


def _rule_names() -> list[str]:
    from bench.pattern_matching import rules

    return list(rules())


def run(*, count: int = 1000, repeats: int = 5) -> dict[str, Any]:
    """The whole benchmark, on a bus with the saga's rules and on a bare bus (the client
    and request overhead alone); sizes are parameters so the smoke test can run it tiny."""
    common.moto_environment()
    items = entries(count)
    return {
        "events": count,
        "repeats": repeats,
        "saga_rules_bus": _measure(items, repeats, with_rules=True),
        "bare_bus": _measure(items, repeats, with_rules=False),
        "size_aware": size_aware_requests(count),
    }
