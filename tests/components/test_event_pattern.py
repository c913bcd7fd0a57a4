"""Unit tests for pulumi_eventcraft.event_pattern: what the builder emits, what the validator
says, and how the matcher treats EventBridge's edge cases."""

from __future__ import annotations

import itertools
import json
import re
from typing import Any

import pytest

from eventcraft_sandbox.mock_deploy import RecordingMocks, deploy
from pulumi_eventcraft.event_pattern import (
    DEFAULT_MAX_PATTERN_LENGTH,
    MAX_NESTING_DEPTH,
    MAX_PATTERN_LENGTH,
    InvalidEventPatternError,
    Pattern,
    any_of,
    anything_but,
    anything_but_ignore_case,
    anything_but_prefix,
    anything_but_suffix,
    anything_but_wildcard,
    cidr,
    compile_pattern,
    equals_ignore_case,
    exists,
    matches,
    numeric,
    parse_json,
    prefix,
    suffix,
    validate_pattern,
    wildcard,
)
from pulumi_eventcraft.event_rule import EventRule, EventRuleArgs, InvalidRulePatternError

ENVELOPE: dict[str, Any] = {
    "version": "0",
    "id": "7bf73129-1428-4cd3-a780-95db273d1602",
    "detail-type": "OrderPlaced",
    "source": "orders",
    "account": "123456789012",
    "time": "2026-01-02T03:04:05Z",
    "region": "us-east-1",
    "resources": [],
}


def event(detail: Any = None, **top: Any) -> dict[str, Any]:
    """An event on the bus: the standard envelope plus `detail` and any top-level fields."""
    out = dict(ENVELOPE)
    if detail is not None:
        out["detail"] = detail
    out.update(top)
    return out


# ---------------------------------------------------------------------------- builder


@pytest.mark.parametrize(
    ("matcher", "expected"),
    [
        (prefix("us-"), {"prefix": "us-"}),
        (prefix("EventB", ignore_case=True), {"prefix": {"equals-ignore-case": "EventB"}}),
        (suffix(".png"), {"suffix": ".png"}),
        (suffix(".png", ignore_case=True), {"suffix": {"equals-ignore-case": ".png"}}),
        (equals_ignore_case("Alice"), {"equals-ignore-case": "Alice"}),
        (wildcard("dir/*.png"), {"wildcard": "dir/*.png"}),
        (anything_but("initializing"), {"anything-but": "initializing"}),
        (anything_but(100, 200), {"anything-but": [100, 200]}),
        (anything_but_prefix("init"), {"anything-but": {"prefix": "init"}}),
        (anything_but_prefix("a", "b"), {"anything-but": {"prefix": ["a", "b"]}}),
        (anything_but_suffix(".txt"), {"anything-but": {"suffix": ".txt"}}),
        (anything_but_wildcard("*/lib/*"), {"anything-but": {"wildcard": "*/lib/*"}}),
        (
            anything_but_ignore_case("a", "b"),
            {"anything-but": {"equals-ignore-case": ["a", "b"]}},
        ),
        (numeric("=", 301.8), {"numeric": ["=", 301.8]}),
        (numeric(">", 0, "<=", 5), {"numeric": [">", 0, "<=", 5]}),
        (exists(), {"exists": True}),
        (exists(False), {"exists": False}),
        (cidr("10.0.0.0/24"), {"cidr": "10.0.0.0/24"}),
        (cidr("2001:db8::/64"), {"cidr": "2001:db8::/64"}),
    ],
)
def test_each_matcher_becomes_the_expression_eventbridge_takes(
    matcher: Any, expected: dict[str, Any]
) -> None:
    assert matcher.to_dict() == expected
    assert Pattern(detail={"f": matcher}).to_dict() == {"detail": {"f": [expected]}}


def test_pattern_maps_field_names_and_wraps_exact_values_in_arrays() -> None:
    pattern = Pattern(
        source="orders",
        detail_type=["OrderPlaced", "OrderPaid"],
        detail={
            "amount": numeric(">=", 1000),
            "priority": [1, 2.5],
            "gift": True,
            "coupon": None,
            "state": ["new", prefix("re")],
            "customer": {"tier": "gold"},
        },
    )

    assert pattern.to_dict() == {
        "detail-type": ["OrderPlaced", "OrderPaid"],
        "source": ["orders"],
        "detail": {
            "amount": [{"numeric": [">=", 1000]}],
            "priority": [1, 2.5],
            "gift": [True],
            "coupon": [None],
            "state": ["new", {"prefix": "re"}],
            "customer": {"tier": ["gold"]},
        },
    }
    assert json.loads(pattern.to_json()) == pattern.to_dict()
    assert " " not in pattern.to_json()  # compact: the length that counts against the quota


def test_any_of_is_or_and_merges_with_sibling_fields() -> None:
    pattern = Pattern(
        any_of({"source": "a"}, {"source": "b"}),
        detail={"state": "ok", **any_of({"x": numeric(">", 1)}, {"y": exists(False)})},
    )

    assert pattern.to_dict() == {
        "detail": {
            "state": ["ok"],
            "$or": [{"x": [{"numeric": [">", 1]}]}, {"y": [{"exists": False}]}],
        },
        "$or": [{"source": ["a"]}, {"source": ["b"]}],
    }
    assert pattern.matches(event({"state": "ok", "x": 2}, source="b"))
    assert not pattern.matches(event({"state": "ok", "x": 2}, source="c"))
    assert not pattern.matches(event({"state": "ok", "x": 0, "y": 1}, source="a"))


def test_pattern_takes_other_top_level_fields_as_mappings() -> None:
    pattern = Pattern({"EventBusArn": wildcard("arn:aws:events:*:*:event-bus/orders")})

    assert pattern.to_dict() == {
        "EventBusArn": [{"wildcard": "arn:aws:events:*:*:event-bus/orders"}]
    }


def test_pattern_is_validated_when_built_and_names_the_field() -> None:
    with pytest.raises(InvalidEventPatternError) as raised:
        Pattern(source="orders", detail={"amount": numeric("=>", 5)})  # type: ignore[arg-type]

    assert str(raised.value) == (
        'detail.amount: numeric operator "=>" is not allowed; use one of <, <=, =, >, >='
    )


def test_builder_rejects_conflicting_or_empty_arguments() -> None:
    with pytest.raises(ValueError, match="source"):
        Pattern({"source": ["x"]}, source="y")
    with pytest.raises(ValueError, match="at least 2"):
        any_of({"a": "x"})
    with pytest.raises(ValueError, match="at least one value"):
        anything_but()


def test_brief_example_matches_high_value_orders_only() -> None:
    pattern = Pattern(
        source=["orders"], detail_type=["OrderPlaced"], detail={"amount": numeric(">=", 1000)}
    )

    assert pattern.matches(event({"amount": 1000}))
    assert not pattern.matches(event({"amount": 999.99}))
    assert not pattern.matches(event({"amount": "1000"}))


# -------------------------------------------------------------------------- validator


@pytest.mark.parametrize(
    ("pattern", "path", "reason"),
    [
        ([], "pattern", "must be a JSON object"),
        ({}, "pattern", "empty objects are not allowed"),
        ({"detail": {}}, "detail", "empty objects are not allowed"),
        ({"source": "orders"}, "source", "must be an array of match values"),
        ({"source": 42}, "source", "not the number 42"),
        ({"resources": []}, "resources", "empty arrays are not allowed"),
        ({"a": [["nested"]]}, "a", "match values must be strings, numbers, true, false, null"),
        ({"a": [{}]}, "a", "exactly one operator"),
        ({"a": [{"prefix": "x", "suffix": "y"}]}, "a", "exactly one operator"),
        (
            {"a": [{"NUMERIC": ["=", 5]}]},
            "a",
            'unknown operator "NUMERIC" (operators are case-sensitive)',
        ),
        ({"a": [{"contains": "x"}]}, "a", "use one of anything-but, cidr, equals-ignore-case"),
        ({"a": [{"exists": "yes"}]}, "a", "exists must be true or false"),
        ({"a": [{"prefix": 1}]}, "a", "prefix must be a string or"),
        ({"a": [{"prefix": ["x"]}]}, "a", "prefix must be a string or"),
        (
            {"a": [{"suffix": {"prefix": "x"}}]},
            "a",
            'suffix must be a string or {"equals-ignore-case"',
        ),
        ({"a": [{"equals-ignore-case": ["x"]}]}, "a", "equals-ignore-case must be a string"),
        ({"a": [{"wildcard": 1}]}, "a", "wildcard must be a string"),
        ({"a": [{"wildcard": "a**b"}]}, "a", "consecutive * at position 1"),
        ({"a": [{"wildcard": "a\\b"}]}, "a", "only \\* (a literal star) and \\\\ (a backslash)"),
        ({"a": [{"wildcard": "*:*:*:*:*:x/*"}]}, "a", "rule is too complex"),
        ({"a": [{"numeric": 5}]}, "a", 'numeric must be an array like [">", 0, "<=", 5]'),
        ({"a": [{"numeric": []}]}, "a", "numeric must not be empty"),
        ({"a": [{"numeric": [">", 0, "<"]}]}, "a", 'numeric operator "<" needs a number after it'),
        ({"a": [{"numeric": [">", 0, ">", 5]}]}, "a", "followed by an upper bound"),
        ({"a": [{"numeric": ["<", 5, ">", 0]}]}, "a", "a lower bound"),
        ({"a": [{"numeric": ["=", 5, "<", 9]}]}, "a", "one comparison, or a range"),
        ({"a": [{"numeric": [">", 0, "<", 5, "<", 6]}]}, "a", "one comparison, or a range"),
        (
            {"a": [{"numeric": [">", 5, "<=", 5]}]},
            "a",
            "lower bound 5 must be less than upper bound 5",
        ),
        ({"a": [{"numeric": [">", "5"]}]}, "a", 'numeric value for ">" must be a number'),
        ({"a": [{"numeric": [">", True]}]}, "a", "must be a number, not true"),
        ({"a": [{"numeric": ["<", 5e9 + 1]}]}, "a", "between -5000000000 and 5000000000"),
        ({"a": [{"numeric": ["=", 0.1234567]}]}, "a", "more than 6 digits after the decimal point"),
        ({"a": [{"cidr": ["10.0.0.0/8"]}]}, "a", "cidr must be a string"),
        ({"a": [{"cidr": "10.0.0.0"}]}, "a", 'needs exactly one "/"'),
        ({"a": [{"cidr": "10.0.0.0/x"}]}, "a", "mask bits must be an integer"),
        ({"a": [{"cidr": "10.0.0.256/8"}]}, "a", '"10.0.0.256" is not an IPv4 or IPv6 address'),
        ({"a": [{"cidr": "10.0.0.1/32"}]}, "a", "IPv4 mask bits must be between 0 and 31"),
        ({"a": [{"cidr": "::1/128"}]}, "a", "IPv6 mask bits must be between 0 and 127"),
        ({"a": [{"anything-but": None}]}, "a", "anything-but must be a string, a number"),
        ({"a": [{"anything-but": []}]}, "a", "a non-empty array of only strings or only numbers"),
        ({"a": [{"anything-but": ["x", 1]}]}, "a", "only strings or only numbers"),
        (
            {"a": [{"anything-but": [1e10]}]},
            "a",
            "anything-but number 10000000000.0 is out of range",
        ),
        (
            {"a": [{"anything-but": {"exists": True}}]},
            "a",
            "exactly one of equals-ignore-case, prefix",
        ),
        ({"a": [{"anything-but": {"prefix": ""}}]}, "a", "must not be an empty string"),
        ({"a": [{"anything-but": {"suffix": [".x", 1]}}]}, "a", "not the number 1"),
        ({"a": [{"anything-but": {"equals-ignore-case": 1}}]}, "a", "must be a string or an array"),
        ({"a": [{"anything-but": {"wildcard": "x**"}}]}, "a", "consecutive *"),
        ({"$or": {"a": ["x"]}}, "$or", "$or must be an array of at least 2 objects"),
        ({"$or": [{"a": ["x"]}]}, "$or", "at least 2 objects"),
        ({"d": {"$or": [{"a": ["x"]}, "b"]}}, "d.$or[1]", "$or may only contain objects"),
        ({"d": {"$or": [{"a": ["x"]}, {"prefix": ["b"]}]}}, "d.$or[1].prefix", "is reserved"),
        ({"$or": [{"a": ["x"]}, {"b": {"c": [{"numeric": ["=>", 1]}]}}]}, "$or[1].b.c", '"=>"'),
    ],
)
def test_validator_names_the_field_and_what_is_allowed(
    pattern: Any, path: str, reason: str
) -> None:
    with pytest.raises(InvalidEventPatternError) as raised:
        validate_pattern(pattern)

    assert raised.value.path == path
    assert reason in raised.value.reason
    assert str(raised.value) == f"{path}: {raised.value.reason}"
    assert isinstance(raised.value, ValueError)


def test_validator_rejects_text_that_is_not_json() -> None:
    for text in ['{"a": ["x"]', '{"a": [NaN]}', "not json"]:
        with pytest.raises(InvalidEventPatternError) as raised:
            validate_pattern(text)
        assert raised.value.path == "pattern"
        assert "not valid JSON" in raised.value.reason


def test_pattern_size_limit_defaults_to_the_quota_and_is_adjustable() -> None:
    # {"a":["xxx..."]} is 10 characters of JSON around the value.
    at_limit = {"a": ["x" * (DEFAULT_MAX_PATTERN_LENGTH - 10)]}
    over = {"a": ["x" * (DEFAULT_MAX_PATTERN_LENGTH - 9)]}

    assert validate_pattern(at_limit) == at_limit
    with pytest.raises(InvalidEventPatternError) as raised:
        validate_pattern(over)
    assert raised.value.path == "pattern"
    assert "is 2049 characters; at most 2048 are allowed" in raised.value.reason
    assert validate_pattern(over, max_length=MAX_PATTERN_LENGTH) == over
    # A string is measured as given, whitespace included.
    with pytest.raises(InvalidEventPatternError):
        validate_pattern('{"a": ["x"]}' + " " * DEFAULT_MAX_PATTERN_LENGTH)


def test_validate_returns_a_fresh_dict_and_last_duplicate_key_wins() -> None:
    first = validate_pattern('{"a": ["x"], "a": ["y"]}')
    first["a"].append("mutated")

    assert validate_pattern('{"a": ["x"], "a": ["y"]}') == {"a": ["y"]}


def test_valid_edge_patterns_are_accepted() -> None:
    for pattern in [
        {"a": [{"prefix": ""}]},
        {"a": [{"suffix": ""}]},
        {"a": [{"wildcard": ""}]},
        {"a": [{"anything-but": {"wildcard": ""}}]},
        {"a": [{"equals-ignore-case": ""}]},
        {"a": [{"numeric": ["=", -5e9]}]},
        {"a": [{"numeric": [">=", 0.000001, "<", 5000000000]}]},
        {"a": [{"cidr": "10.0.0.5/24"}]},
        {"a": [1e300, -0.0, True, False, None, ""]},  # exact values are not range-checked
        {"a": [{"wildcard": "/Users/*/dir/dir/dir/dir/dir/doc.txt"}]},
        {"a": [{"wildcard": "a\\*b\\\\c"}]},
        {"$or": [{"a": ["x"]}, {"$or": [{"b": ["y"]}, {"c": ["z"]}]}]},
    ]:
        assert validate_pattern(pattern) == pattern


# ---------------------------------------------------------------------------- matcher


def test_event_array_matches_if_any_element_matches() -> None:
    pattern = {"resources": ["arn:b", "arn:z"]}

    assert matches(pattern, event(resources=["arn:a", "arn:b"]))
    assert not matches(pattern, event(resources=["arn:a"]))
    assert not matches(pattern, event(resources=[]))
    assert matches({"detail": {"n": [3]}}, event({"n": [[1, 2], [3]]}))  # nested arrays too


def test_arrays_of_objects_are_traversed_but_fields_stay_within_one_element() -> None:
    pattern = {"detail": {"items": {"sku": [{"prefix": "A"}], "qty": [{"numeric": [">", 1]}]}}}

    assert matches(pattern, event({"items": [{"sku": "B1", "qty": 5}, {"sku": "A1", "qty": 2}]}))
    # "A1" and qty 5 are both present, but in different elements of the same array.
    assert not matches(
        pattern, event({"items": [{"sku": "A1", "qty": 1}, {"sku": "B1", "qty": 5}]})
    )
    # Different arrays do not constrain each other.
    split = {"detail": {"a": {"x": ["1"]}, "b": {"y": ["2"]}}}
    assert matches(split, event({"a": [{"x": "0"}, {"x": "1"}], "b": [{"y": "2"}]}))


def test_exists_false_is_checked_within_the_matched_array_element() -> None:
    pattern = {"detail": {"items": {"sku": ["A"], "voided": [{"exists": False}]}}}

    assert matches(pattern, event({"items": [{"sku": "A"}, {"sku": "B", "voided": True}]}))
    assert not matches(pattern, event({"items": [{"sku": "A", "voided": True}]}))


@pytest.mark.parametrize(
    ("detail", "present", "absent"),
    [
        ({}, False, True),
        ({"c": None}, True, False),  # null is a value
        ({"c": ""}, True, False),
        ({"c": []}, False, True),  # an empty array holds no value
        ({"c": [None]}, True, False),
        ({"c": {"c1": 1}}, False, True),  # exists only sees leaves, not objects
        ({"c": {}}, False, True),
        ({"c": [{"c1": 1}]}, False, True),
    ],
)
def test_exists_sees_leaf_values_only(detail: dict[str, Any], present: bool, absent: bool) -> None:
    assert matches({"detail": {"c": [{"exists": True}]}}, event(detail)) is present
    assert matches({"detail": {"c": [{"exists": False}]}}, event(detail)) is absent


def test_missing_detail_and_string_detail_are_not_objects() -> None:
    assert matches({"detail": {"c": [{"exists": False}]}}, event())
    assert not matches({"detail": {"k": ["v"]}}, event('{"k": "v"}'))


@pytest.mark.parametrize(
    ("pattern_value", "event_value", "expected"),
    [
        (None, None, True),
        (None, "null", False),
        ("null", None, False),
        ("", "", True),
        ("", None, False),
        (300, 300.0, True),  # numbers compare as numbers
        (3.0e2, 300, True),
        (301.8, 301.8, True),
        (300, "300", False),
        ("300", 300, False),
        (True, True, True),
        (True, 1, False),  # JSON true is not the number 1
        (1, True, False),
        (False, 0, False),
        (0, False, False),
        ("Orders", "orders", False),  # exact, case-sensitive
        ("10.0.0.1", "10.0.0.1", True),
        ("2001:db8::1", "2001:0db8:0000:0000:0000:0000:0000:0001", True),  # same address
    ],
)
def test_exact_values_respect_json_types(
    pattern_value: Any, event_value: Any, expected: bool
) -> None:
    assert matches({"detail": {"v": [pattern_value]}}, event({"v": event_value})) is expected


def test_null_pattern_does_not_match_missing_or_empty_array() -> None:
    assert not matches({"detail": {"v": [None]}}, event({}))
    assert not matches({"detail": {"v": [None]}}, event({"v": []}))


def test_numeric_matching_needs_a_json_number_in_range() -> None:
    pattern = {"detail": {"n": [{"numeric": [">", 0, "<=", 5]}]}}

    assert matches(pattern, event({"n": 5}))
    assert matches(pattern, event({"n": 0.000001}))
    assert not matches(pattern, event({"n": 0}))
    assert not matches(pattern, event({"n": 5.000001}))
    assert not matches(pattern, event({"n": "3"}))
    assert not matches(pattern, event({"n": True}))
    assert not matches(pattern, event({"n": None}))
    assert matches({"detail": {"n": [{"numeric": ["=", 0.1]}]}}, event({"n": 0.1}))
    # Beyond +-5e9 event-ruler cannot compare: a numeric test never matches there.
    assert not matches({"detail": {"n": [{"numeric": [">", 0]}]}}, event({"n": 6e9}))
    assert matches({"detail": {"n": [{"numeric": [">", 0]}]}}, event({"n": 5e9}))


def test_dots_in_keys_join_like_nesting() -> None:
    assert matches({"detail": {"state.status": ["on"]}}, event({"state": {"status": "on"}}))
    assert matches({"detail": {"state": {"status": ["on"]}}}, event({"state.status": "on"}))
    assert not matches(
        {"detail": {"state": {"status": ["on"]}}}, event({"state.status": {"status": "on"}})
    )


def test_anything_but_needs_a_value_but_accepts_any_other_type() -> None:
    strings = {"detail": {"s": [{"anything-but": ["stopped"]}]}}
    assert matches(strings, event({"s": "running"}))
    assert matches(strings, event({"s": None}))
    assert matches(strings, event({"s": 7}))
    assert not matches(strings, event({"s": "stopped"}))
    assert not matches(strings, event({}))

    numbers = {"detail": {"n": [{"anything-but": [100, 200]}]}}
    assert matches(numbers, event({"n": 150}))
    assert matches(numbers, event({"n": "100"}))  # a string is not the number 100
    assert not matches(numbers, event({"n": 100.0}))

    assert matches({"detail": {"s": [{"anything-but": {"prefix": "init"}}]}}, event({"s": 12}))
    assert not matches(
        {"detail": {"s": [{"anything-but": {"suffix": [".a", ".b"]}}]}}, event({"s": "x.b"})
    )
    assert not matches(
        {"detail": {"s": [{"anything-but": {"equals-ignore-case": "ON"}}]}}, event({"s": "on"})
    )
    assert matches(
        {"detail": {"s": [{"anything-but": {"wildcard": "*/x/*"}}]}}, event({"s": "a/y/b"})
    )


def test_string_operators_only_match_strings() -> None:
    assert matches({"detail": {"s": [{"prefix": ""}]}}, event({"s": "anything"}))
    assert not matches({"detail": {"s": [{"prefix": ""}]}}, event({"s": 5}))
    assert not matches({"detail": {"s": [{"suffix": "5"}]}}, event({"s": 5}))
    assert not matches({"detail": {"s": [{"wildcard": "*"}]}}, event({"s": None}))
    assert not matches({"detail": {"s": [{"equals-ignore-case": "true"}]}}, event({"s": True}))


def test_ignore_case_variants() -> None:
    assert matches(
        {"detail": {"s": [{"equals-ignore-case": "EventBridge"}]}}, event({"s": "EVENTbridge"})
    )
    assert not matches(
        {"detail": {"s": [{"equals-ignore-case": "Event"}]}}, event({"s": "EventBridge"})
    )
    assert matches(
        {"detail": {"s": [{"prefix": {"equals-ignore-case": "EventB"}}]}}, event({"s": "eventbus"})
    )
    assert matches(
        {"detail": {"s": [{"suffix": {"equals-ignore-case": ".PNG"}}]}}, event({"s": "a.png"})
    )
    # Each pattern character matches its lower- and upper-case forms, as event-ruler does.
    assert matches({"detail": {"s": [{"equals-ignore-case": "straße"}]}}, event({"s": "STRASSE"}))


def test_wildcard_semantics() -> None:
    def wild(value: str, text: str) -> bool:
        return matches({"detail": {"s": [{"wildcard": value}]}}, event({"s": text}))

    assert wild("dir/*.png", "dir/a/b.png")
    assert wild("dir/*.png", "dir/.png")  # * may match nothing
    assert not wild("dir/*.png", "other/a.png")
    assert wild("a\\*b", "a*b")  # \* is a literal star
    assert not wild("a\\*b", "axb")
    assert wild("a\\\\b", "a\\b")
    assert wild("", "")
    assert not wild("", "x")
    assert wild("*\n*", "line1\nline2")


def test_cidr_matches_addresses_in_the_block() -> None:
    v4 = {"detail": {"ip": [{"cidr": "10.0.0.0/24"}]}}
    assert matches(v4, event({"ip": "10.0.0.255"}))
    assert not matches(v4, event({"ip": "10.0.1.0"}))
    assert not matches(v4, event({"ip": "10.0.0.256"}))
    assert not matches(v4, event({"ip": "not an ip"}))
    assert not matches(v4, event({"ip": 167772161}))
    # Host bits in the pattern do not shrink the block.
    assert matches({"detail": {"ip": [{"cidr": "10.0.0.5/24"}]}}, event({"ip": "10.0.0.1"}))
    v6 = {"detail": {"ip": [{"cidr": "2001:db8:1234:1a00::/64"}]}}
    assert matches(v6, event({"ip": "2001:0db8:1234:1a00:0000:0000:0000:0001"}))
    assert not matches(v6, event({"ip": "2001:db8:1234:1a01::1"}))
    assert not matches(v6, event({"ip": "10.0.0.1"}))


def test_or_branches_and_with_sibling_fields() -> None:
    pattern = {
        "source": ["orders"],
        "detail": {"$or": [{"c": [{"numeric": [">", 0]}]}, {"d": [{"numeric": ["<", 10]}]}]},
    }

    assert matches(pattern, event({"c": 1, "d": 99}))
    assert matches(pattern, event({"c": 0, "d": 9}))
    assert not matches(pattern, event({"c": 0, "d": 10}))
    assert not matches(pattern, event({"c": 1}, source="payments"))


def test_several_match_values_for_one_field_are_alternatives() -> None:
    pattern = {"detail": {"s": [{"exists": True}, {"prefix": "never"}]}}

    assert matches(pattern, event({"s": "anything"}))
    assert matches({"detail": {"s": ["x", {"exists": False}]}}, event({}))


def test_compiled_patterns_are_reused_and_take_json_text() -> None:
    pattern = {"source": ["orders"]}
    compiled = compile_pattern(pattern)

    assert compile_pattern(json.dumps(pattern, separators=(",", ":"))) is compiled
    assert compiled.pattern == pattern
    assert compiled.matches(json.dumps(event()))
    with pytest.raises(ValueError, match="JSON object"):
        compiled.matches("[1, 2]")
    with pytest.raises(ValueError, match="not valid JSON"):
        compiled.matches("{")


def test_matching_ignores_fields_the_pattern_does_not_name() -> None:
    compiled = compile_pattern({"detail": {"a": {"b": ["x"]}}})
    noisy = event(
        {"a": {"b": "x", "zz": [{"deep": list(range(1000))}]}, "other": {"k": [1] * 1000}}
    )

    assert compiled.matches(noisy)
    assert not compiled.matches(event({"a": {"b": "y"}}))


# ------------------------------------------------- linear wildcards, JSON as AWS reads it


class CountingStr(str):
    """An event value that counts the characters a matcher examines through str's own
    searches (startswith, endswith, find): the work done to decide a wildcard."""

    examined = 0

    def startswith(self, prefix: Any, *args: Any) -> bool:
        self.examined += len(prefix)
        return super().startswith(prefix, *args)

    def endswith(self, suffix: Any, *args: Any) -> bool:
        self.examined += len(suffix)
        return super().endswith(suffix, *args)

    def find(self, sub: Any, start: Any = None, end: Any = None) -> int:
        found = super().find(sub, start, end)
        low = 0 if start is None else start
        high = len(self) if end is None else end
        self.examined += found + len(sub) - low if found >= 0 else max(high - low, 0)
        return found


N = 1000  # long enough to show the shape; the counter, not a clock, tells linear work


@pytest.mark.parametrize(
    ("value", "text", "expected"),
    [
        # The last run between stars occurs only at the very end of the value, or
        # nowhere: any matcher has to read the whole value to decide. A backtracking
        # regex reads it again and again (`.*a.*a.*b.*c` on "aaa...c": O(N^3) steps).
        ("*a*a*b*c", "a" * N + "c", False),
        ("*a*a*b", "c" * N + "aab", True),
        ("*ab*ab*c", "a" * N + "c", False),
        ("*ab*ab*c", "a" * N + "ababc", True),
        ("*a*b*a*b*c", "b" * N + "ababc", True),
        ("*a*b*a*b*c", "b" * N + "ac", False),
        ("x*aa*aa*aa*y", "x" + "b" * N + "aaaaaay", True),
        ("x*aa*aa*aa*y", "x" + "ab" * N + "y", False),
        ("*a\\*b*c", "a*" * N + "c", False),  # \* is a literal star
        ("*a\\*b*c", "a*" * N + "a*bc", True),
    ],
)
def test_wildcards_read_the_value_once_however_the_stars_fall(
    value: str, text: str, expected: bool
) -> None:
    compiled = compile_pattern({"detail": {"s": [{"wildcard": value}]}})
    counted = CountingStr(text)

    assert compiled.matches(event({"s": counted})) is expected
    # Linear: no character is examined twice, and the verdict rests on having read
    # the value (a backtracking regex reads it outside these searches, many times).
    assert len(text) - len(value) <= counted.examined <= len(text) + len(value)


def test_anything_but_wildcard_reads_the_value_once() -> None:
    compiled = compile_pattern({"detail": {"s": [{"anything-but": {"wildcard": "*ab*ab*c"}}]}})
    counted = CountingStr("a" * N + "c")

    assert compiled.matches(event({"s": counted}))
    assert N - 8 <= counted.examined <= N + 8


def test_wildcards_agree_with_a_regex_on_every_small_case() -> None:
    # Every wildcard of up to 4 tokens over a, b, `*` and `\*` (a literal star) against
    # every value of up to 4 characters over a, b, `*`: the greedy matcher gives the
    # same verdict as a regex (exact, and fast at this size).
    tokens = ["a", "b", "*", "\\*"]
    wildcards = [
        "".join(combo)
        for size in range(1, 5)
        for combo in itertools.product(tokens, repeat=size)
        if "**" not in "".join(combo).replace("\\*", "")
    ]
    values = ["".join(v) for size in range(5) for v in itertools.product("ab*", repeat=size)]
    checked = 0
    for wild in wildcards:
        try:
            compiled = compile_pattern({"s": [{"wildcard": wild}]})
        except InvalidEventPatternError:
            continue  # too complex for EventBridge
        parts = re.split(r"(\\\*|\*)", wild)
        regex = re.compile(
            "".join(".*" if p == "*" else re.escape("*" if p == "\\*" else p) for p in parts),
            re.DOTALL,
        )
        for value in values:
            assert compiled.matches({"s": value}) is bool(regex.fullmatch(value)), (wild, value)
            checked += 1
    assert checked > 30_000


def _nested_arrays(depth: int, leaf: str = "1") -> str:
    return "[" * depth + leaf + "]" * depth


def _from_deep_in_the_stack(frames: int, call: Any) -> Any:
    """Run `call` under `frames` more Python frames, as a caller deep in a program would."""
    return call() if frames == 0 else _from_deep_in_the_stack(frames - 1, call)


def test_events_up_to_eventbridges_1000_levels_match_deeper_ones_are_refused() -> None:
    compiled = compile_pattern({"detail": {"n": [1]}})
    # The event object is level 1, detail level 2, then the arrays.
    deepest = '{"detail": {"n": ' + _nested_arrays(MAX_NESTING_DEPTH - 2) + "}}"
    too_deep = '{"detail": {"n": ' + _nested_arrays(MAX_NESTING_DEPTH - 1) + "}}"

    assert MAX_NESTING_DEPTH == 1000
    assert _from_deep_in_the_stack(300, lambda: compiled.matches(deepest)) is True
    for text in (too_deep, _nested_arrays(100_000)):
        with pytest.raises(ValueError, match="nested more than 1000 levels deep") as raised:
            compiled.matches(text)
        assert not isinstance(raised.value, RecursionError)
    # The same event as a dict: its arrays are walked without recursion.
    as_dict = parse_json(deepest)
    assert _from_deep_in_the_stack(300, lambda: compiled.matches(as_dict)) is True
    assert parse_json('{"a": "[[[\\"{{"}') == {"a": '[[["{{'}  # brackets in strings


def test_patterns_nested_past_1000_levels_are_invalid_not_a_recursion_error() -> None:
    def nested(depth: int) -> dict[str, Any]:
        pattern: Any = ["x"]
        for _ in range(depth):
            pattern = {"a": pattern}
        return pattern

    # What 4096 characters can hold (about 800 levels) compiles from deep in a program.
    text = '{"a":' * 800 + '["x"]' + "}" * 800
    compiled = _from_deep_in_the_stack(300, lambda: compile_pattern(text, max_length=len(text)))
    assert compiled.matches(parse_json('{"a":' * 800 + '"x"' + "}" * 800))

    for build in (validate_pattern, Pattern):
        with pytest.raises(InvalidEventPatternError) as raised:
            build(nested(5000), max_length=10**6)
        assert raised.value.path == "pattern"
        assert "nested more than 1000 levels deep" in raised.value.reason


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
def test_nan_and_infinity_are_not_json(constant: str) -> None:
    compiled = compile_pattern({"detail": {"n": [{"exists": True}]}})

    with pytest.raises(ValueError, match=f"{constant} is not a JSON number"):
        compiled.matches('{"detail": {"n": ' + constant + "}}")
    with pytest.raises(InvalidEventPatternError, match="not valid JSON"):
        validate_pattern('{"n": [{"numeric": [">", ' + constant + "]}]}")
    with pytest.raises(ValueError, match="not a JSON number"):
        parse_json(constant)


@pytest.mark.parametrize(
    ("matcher", "shown"),
    [
        ({"numeric": [">", 6e9]}, 'numeric value for ">" 6000000000.0 is out of range'),
        ({"numeric": [">=", -5_000_000_001]}, 'numeric value for ">=" -5000000001 is out'),
        ({"anything-but": [5e9, 1e10]}, "anything-but number 10000000000.0 is out of range"),
    ],
)
def test_a_rule_comparing_numbers_beyond_5e9_fails_at_declaration(
    matcher: dict[str, Any], shown: str
) -> None:
    # EventBridge compares numbers only within +-5.0e9 (event-ruler's ComparableNumber:
    # "Value must be between -5000000000 and 5000000000, inclusive") and rejects a
    # pattern that asks for more; `pulumi preview` fails the same way, naming the field.
    def program() -> None:
        EventRule(
            "high-value",
            EventRuleArgs(bus="default", pattern={"detail": {"amount": [matcher]}}),
        )

    with pytest.raises(InvalidRulePatternError) as raised:
        deploy(program, mocks=RecordingMocks())

    assert raised.value.path == "detail.amount"
    assert shown in raised.value.reason
    assert "between -5000000000 and 5000000000 inclusive" in raised.value.reason


def test_exact_numbers_beyond_5e9_are_still_exact_values() -> None:
    # An exact number is compared as written too (event-ruler keeps it when it cannot
    # be a ComparableNumber, e.g. an account id), so it is valid and matches itself.
    pattern = {"detail": {"account": [123456789012]}}

    assert validate_pattern(pattern) == pattern
    assert matches(pattern, event({"account": 123456789012}))
    assert not matches(pattern, event({"account": 123456789013}))
