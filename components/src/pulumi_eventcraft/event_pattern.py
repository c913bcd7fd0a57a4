"""EventBridge event patterns: build them, validate them, match events against them.

Three parts, one module:

* a small typed builder (`Pattern`, `prefix`, `numeric`, `any_of`, ...) that produces
  the plain dict/JSON EventBridge takes;
* `validate_pattern`, which rejects what EventBridge rejects with an
  `InvalidEventPatternError` naming the field's path and what is allowed;
* `compile_pattern` / `matches`, a matcher with EventBridge's semantics, compiled once
  so a rule can be matched against every event on a bus cheaply. As in EventBridge, a
  wildcard matches a value in time linear in the value's length.

JSON is read as EventBridge reads it (`parse_json`): no NaN or Infinity, and at most
MAX_NESTING_DEPTH (1000) levels of arrays and objects, refused with a ValueError
(InvalidEventPatternError for a pattern), never a RecursionError.

The semantics follow the AWS user guide (eb-event-patterns*.html) and, where the guide
is silent, aws/event-ruler, the open-source engine behind EventBridge rule matching:
its JsonRuleCompiler for what is valid and rulesForJSONEvent (array-consistent) for
what matches. tests/components/test_event_pattern_conformance.py runs every case in
shared/conformance/eventbridge-patterns, each confirmed against real EventBridge.
"""

from __future__ import annotations

import contextlib
import functools
import ipaddress
import json
import math
import re
import sys
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Literal, TypeAlias

__all__ = [
    "DEFAULT_MAX_PATTERN_LENGTH",
    "MAX_NESTING_DEPTH",
    "MAX_PATTERN_LENGTH",
    "CompiledPattern",
    "InvalidEventPatternError",
    "Matcher",
    "NumericOp",
    "Pattern",
    "any_of",
    "anything_but",
    "anything_but_ignore_case",
    "anything_but_prefix",
    "anything_but_suffix",
    "anything_but_wildcard",
    "cidr",
    "compile_pattern",
    "equals_ignore_case",
    "exists",
    "matches",
    "numeric",
    "parse_json",
    "prefix",
    "suffix",
    "validate_pattern",
    "wildcard",
]

# "Event pattern size": 2,048 characters by default, adjustable by a quota increase
# (AWS EventBridge quotas page, eb-quota.html).
DEFAULT_MAX_PATTERN_LENGTH = 2048
# The API's hard maximum for the EventPattern string (botocore's events model:
# shape EventPattern, max 4096), which a raised quota cannot exceed.
MAX_PATTERN_LENGTH = 4096

# "PutEvents will only process nested JSON up to 1000 levels deep" (PutEvents API
# reference). Patterns get the same bound: event-ruler parses them with Jackson, whose
# default nesting limit is also 1000. `{}` is 1 level, `{"a": [1]}` 2.
MAX_NESTING_DEPTH = 1000

# event-ruler's ComparableNumber: numbers in numeric matching (and anything-but
# numbers) must lie in [-5e9, 5e9] with at most 6 digits after the decimal point.
_NUMERIC_LIMIT = Decimal(5_000_000_000)
_NUMERIC_DECIMALS = 6

# "Rule is too complex - try using fewer wildcard characters or fewer repeating
# character sequences after a wildcard character" (AWS user guide, wildcard matching
# complexity). EventBridge scores a field's wildcards with event-ruler's
# MachineComplexityEvaluator; the cut-off is not published. With our port of the
# score, the AWS-confirmed cases put it in [7, 10]: "/Users/*/dir/dir/dir/dir/dir/doc.txt"
# scores 7 and is accepted, "*:*:*:*:*:event-bus/*" scores 11 and is rejected.
_WILDCARD_COMPLEXITY_LIMIT = 10

_ANYTHING_BUT_FORMS = ("equals-ignore-case", "prefix", "suffix", "wildcard")
_NUMERIC_OPS = ("<", "<=", "=", ">", ">=")
# Field names event-ruler refuses inside a "$or" branch (Constants.java).
_RESERVED_IN_OR = frozenset(
    (
        "exactly",
        "equals-ignore-case",
        "prefix",
        "suffix",
        "anything-but",
        "exists",
        "wildcard",
        "numeric",
        "cidr",
        "=",
        "<",
        "<=",
        ">",
        ">=",
        "regex",
        "not-wildcard",
        "not-equals-ignore-case",
        "date-after",
        "date-on-or-after",
        "date-before",
        "date-on-or-before",
        "in-date-range",
        "ip-address-in-range",
        "ip-address-not-in-range",
    )
)


class InvalidEventPatternError(ValueError):
    """EventBridge would reject this pattern (InvalidEventPatternException).

    `path` is the dot-joined path of the offending field ("pattern" for the whole
    pattern) and `reason` says what is wrong and what is allowed.
    """

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason


# --------------------------------------------------------------------------- builder

NumericOp: TypeAlias = Literal["<", "<=", "=", ">", ">="]


@dataclass(frozen=True)
class Matcher:
    """One match expression, e.g. `{"prefix": "us-"}`; made by `prefix()` and friends."""

    expression: Mapping[str, Any]

    def to_dict(self) -> dict[str, Any]:
        """The expression as EventBridge takes it (a fresh copy)."""
        return json.loads(json.dumps(self.expression))


def prefix(value: str, *, ignore_case: bool = False) -> Matcher:
    """String starts with `value` (case-sensitive unless `ignore_case`, default False)."""
    return Matcher({"prefix": {"equals-ignore-case": value} if ignore_case else value})


def suffix(value: str, *, ignore_case: bool = False) -> Matcher:
    """String ends with `value` (case-sensitive unless `ignore_case`, default False)."""
    return Matcher({"suffix": {"equals-ignore-case": value} if ignore_case else value})


def equals_ignore_case(value: str) -> Matcher:
    """String equals `value` in any letter case."""
    return Matcher({"equals-ignore-case": value})


def wildcard(value: str) -> Matcher:
    """String matches `value`, where `*` is any run of characters (`\\*` a literal star)."""
    return Matcher({"wildcard": value})


def _one_or_many(values: tuple[Any, ...], what: str) -> Any:
    if not values:
        raise ValueError(f"{what} needs at least one value")
    return values[0] if len(values) == 1 else list(values)


def anything_but(*values: str | int | float) -> Matcher:
    """Any value except these (all strings or all numbers); missing fields never match."""
    return Matcher({"anything-but": _one_or_many(values, "anything_but")})


def anything_but_prefix(*values: str) -> Matcher:
    """Any value that does not start with one of these prefixes."""
    return Matcher({"anything-but": {"prefix": _one_or_many(values, "anything_but_prefix")}})


def anything_but_suffix(*values: str) -> Matcher:
    """Any value that does not end with one of these suffixes."""
    return Matcher({"anything-but": {"suffix": _one_or_many(values, "anything_but_suffix")}})


def anything_but_wildcard(*values: str) -> Matcher:
    """Any value that matches none of these wildcard patterns."""
    return Matcher({"anything-but": {"wildcard": _one_or_many(values, "anything_but_wildcard")}})


def anything_but_ignore_case(*values: str) -> Matcher:
    """Any value that equals none of these strings in any letter case."""
    inner = _one_or_many(values, "anything_but_ignore_case")
    return Matcher({"anything-but": {"equals-ignore-case": inner}})


def numeric(
    op: NumericOp,
    value: int | float,
    op2: NumericOp | None = None,
    value2: int | float | None = None,
) -> Matcher:
    """A number compared with `op value`, optionally a range: `numeric(">", 0, "<=", 5)`."""
    terms: list[Any] = [op, value]
    if op2 is not None or value2 is not None:
        terms += [op2, value2]
    return Matcher({"numeric": terms})


def exists(present: bool = True) -> Matcher:
    """The field is present as a leaf value (`present`, default True) or absent."""
    return Matcher({"exists": present})


def cidr(block: str) -> Matcher:
    """A string IPv4/IPv6 address inside `block`, e.g. "10.0.0.0/24"."""
    return Matcher({"cidr": block})


def any_of(*branches: Mapping[str, Any]) -> dict[str, Any]:
    """`$or`: matches if any branch matches. Merge it into an object of fields:
    `detail={"state": ["ok"], **any_of({"a": ["x"]}, {"b": numeric(">", 1)})}`."""
    if len(branches) < 2:
        raise ValueError("any_of needs at least 2 branches (EventBridge rejects a shorter $or)")
    return {"$or": [_object(branch) for branch in branches]}


def _values(value: Any) -> list[Any]:
    items = list(value) if isinstance(value, list | tuple) else [value]
    return [item.to_dict() if isinstance(item, Matcher) else item for item in items]


def _object(fields: Mapping[str, Any]) -> dict[str, Any]:
    """Normalise builder input: scalars and Matchers become match arrays, mappings nest."""
    out: dict[str, Any] = {}
    for key, value in fields.items():
        if key == "$or" and isinstance(value, list | tuple):
            out[key] = [_object(b) if isinstance(b, Mapping) else b for b in value]
        elif isinstance(value, Mapping):
            out[key] = _object(value)
        else:
            out[key] = _values(value)
    return out


class Pattern:
    """A typed EventBridge event pattern, validated when built.

    `Pattern(source="billing", detail_type="InvoiceIssued", detail={"amount": numeric(">=", 1000)})`
    gives `{"source": ["billing"], "detail-type": ["InvoiceIssued"], "detail": {...}}`.
    A field's value may be a scalar, a `Matcher`, a list of those, or a mapping of
    nested fields; a keyword left at None is not in the pattern (match JSON null with
    `[None]`). Other top-level fields (and a top-level `any_of`) go in positional
    mappings. `max_length` (default 2048, the default quota) bounds `to_json()`.
    Raises `InvalidEventPatternError` for a pattern EventBridge would reject and
    `ValueError` if the same top-level field is given twice.
    """

    def __init__(
        self,
        *fields: Mapping[str, Any],
        version: Any = None,
        id: Any = None,
        detail_type: Any = None,
        source: Any = None,
        account: Any = None,
        time: Any = None,
        region: Any = None,
        resources: Any = None,
        detail: Any = None,
        max_length: int = DEFAULT_MAX_PATTERN_LENGTH,
    ) -> None:
        named = {
            "version": version,
            "id": id,
            "detail-type": detail_type,
            "source": source,
            "account": account,
            "time": time,
            "region": region,
            "resources": resources,
            "detail": detail,
        }
        merged: dict[str, Any] = {k: v for k, v in named.items() if v is not None}
        for extra in fields:
            clash = sorted(set(merged) & set(extra))
            if clash:
                raise ValueError(f"field(s) {', '.join(clash)} given more than once")
            merged.update(extra)
        depth = _value_depth(merged)
        if depth > MAX_NESTING_DEPTH:
            raise InvalidEventPatternError("pattern", str(_TooDeepError()))
        with _room_for(depth):
            pattern = _object(merged)
        self._compiled = compile_pattern(pattern, max_length=max_length)

    def to_dict(self) -> dict[str, Any]:
        """The pattern as a plain dict (a fresh copy)."""
        return self._compiled.pattern

    def to_json(self) -> str:
        """Compact JSON, the form whose length counts against the pattern size quota."""
        return self._compiled.to_json()

    def compile(self) -> CompiledPattern:
        """The compiled matcher for this pattern."""
        return self._compiled

    def matches(self, event: Mapping[str, Any] | str) -> bool:
        """Whether EventBridge would deliver `event` to a rule with this pattern."""
        return self._compiled.matches(event)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Pattern) and self.to_json() == other.to_json()

    def __hash__(self) -> int:
        return hash(self.to_json())

    def __repr__(self) -> str:
        return f"Pattern({self.to_json()})"


# ------------------------------------------------------------------------ validation


def _compact_json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def _reject_constant(name: str) -> Any:
    # Python's json accepts NaN/Infinity; EventBridge's JSON parser does not.
    raise ValueError(f"{name} is not a JSON number; EventBridge refuses NaN and Infinity")


class _RecursionHeadroom:
    """Python's recursion limit (1000 by default, and in 3.11 the json module's C code
    counts against it too) is below MAX_NESTING_DEPTH once the caller's own frames are
    added. While a document that deep is parsed, compiled, walked or dumped, the limit
    is raised by what it needs, and put back when no thread needs it any more."""

    shallow = 100  # fits under any caller: no change

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._users = 0
        self._limit_before = 0

    @contextlib.contextmanager
    def __call__(self, depth: int) -> Iterator[None]:
        if depth <= self.shallow:
            yield
            return
        with self._lock:
            if self._users == 0:
                self._limit_before = sys.getrecursionlimit()
            self._users += 1
            # Two frames a level (json's C code or our compiler, and their callees).
            needed = self._limit_before + 2 * depth + 100
            sys.setrecursionlimit(max(sys.getrecursionlimit(), needed))
        try:
            yield
        finally:
            with self._lock:
                self._users -= 1
                if self._users == 0:
                    sys.setrecursionlimit(self._limit_before)


_room_for = _RecursionHeadroom()


_JSON_SPECIAL = re.compile(r'[\\"\[\]{}]')


def _text_depth(text: str) -> int:
    """How deep the arrays and objects of a JSON text nest, in one pass, no recursion."""
    depth = deepest = 0
    in_string = False
    escaped_at = -1
    for found in _JSON_SPECIAL.finditer(text):
        at, char = found.start(), found.group()
        if at == escaped_at:
            continue
        if in_string:
            if char == "\\":
                escaped_at = at + 1
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            deepest = max(deepest, depth)
        else:
            depth -= 1
    return deepest


def _value_depth(value: Any) -> int:
    """How deep the dicts and lists of `value` nest (iteratively: no RecursionError)."""
    deepest = 0
    pending: list[tuple[Any, int]] = [(value, 0)]
    while pending:
        node, depth = pending.pop()
        if isinstance(node, Mapping):
            children: Iterable[Any] = node.values()
        elif isinstance(node, list | tuple):
            children = node
        else:
            continue
        deepest = max(deepest, depth + 1)
        if deepest > MAX_NESTING_DEPTH:
            break  # deep enough to refuse; no need to look further
        pending.extend((child, depth + 1) for child in children)
    return deepest


class _TooDeepError(ValueError):
    def __init__(self) -> None:
        super().__init__(
            f"the JSON is nested more than {MAX_NESTING_DEPTH} levels deep; EventBridge "
            f"reads at most {MAX_NESTING_DEPTH} levels of arrays and objects"
        )


def parse_json(text: str) -> Any:
    """Parse JSON text as EventBridge does; raises ValueError saying what is wrong.

    Refuses what Python's json would accept but EventBridge does not (NaN, Infinity,
    -Infinity) and documents nested more than MAX_NESTING_DEPTH (1000) levels deep,
    without ever raising RecursionError. Duplicate keys: the last one wins.
    """
    depth = _text_depth(text)
    if depth > MAX_NESTING_DEPTH:
        raise _TooDeepError
    with _room_for(depth):
        return json.loads(text, parse_constant=_reject_constant)


def _load_json(text: str, what: str) -> Any:
    # Duplicate keys: the last one wins, which is what the AWS user guide documents
    # for patterns ("if you include a key more than once the last reference will be
    # the one used") and what json.loads does.
    try:
        return parse_json(text)
    except _TooDeepError as exc:
        raise InvalidEventPatternError(what, str(exc)) from None
    except ValueError as exc:
        raise InvalidEventPatternError(what, f"not valid JSON ({exc})") from None


def _pattern_text(pattern: Mapping[str, Any] | str, max_length: int) -> str:
    """The JSON text EventBridge would receive, checked against the size limit."""
    if isinstance(pattern, str):
        text = pattern
    else:
        depth = _value_depth(pattern)
        if depth > MAX_NESTING_DEPTH:
            raise InvalidEventPatternError("pattern", str(_TooDeepError()))
        try:
            with _room_for(depth):
                text = _compact_json(pattern)
        except (TypeError, ValueError) as exc:
            raise InvalidEventPatternError("pattern", f"is not JSON ({exc})") from None
    if len(text) > max_length:
        raise InvalidEventPatternError(
            "pattern",
            f"is {len(text)} characters; at most {max_length} are allowed (the default "
            f"EventBridge quota is {DEFAULT_MAX_PATTERN_LENGTH}, adjustable up to "
            f"{MAX_PATTERN_LENGTH})",
        )
    return text


def validate_pattern(
    pattern: Mapping[str, Any] | str, *, max_length: int = DEFAULT_MAX_PATTERN_LENGTH
) -> dict[str, Any]:
    """Check `pattern` as EventBridge would and return it as a dict.

    A string is parsed as JSON (duplicate keys: the last wins, as in EventBridge);
    a dict's size is counted as compact JSON. `max_length` defaults to 2048, the
    default "Event pattern size" quota. Raises `InvalidEventPatternError` naming the
    offending field's path and what is allowed.
    """
    return compile_pattern(pattern, max_length=max_length).pattern


# ----------------------------------------------------------------- value matchers

Test: TypeAlias = Callable[[Any], bool]

_IPV4_RE = re.compile(r"[0-9]+\.[0-9]+\.[0-9]+\.[0-9]+")
_IPV6_RE = re.compile(r"[0-9a-fA-F:]*:[0-9a-fA-F:]*")


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float | Decimal) and not isinstance(value, bool)


def _parse_ip(text: str) -> tuple[int, int] | None:
    """(version, address as int) if `text` is an IP literal, else None.

    Gated by the same shapes as event-ruler (so host names never count); dotted-quad
    octets are read as decimal even with leading zeros, and IPv4-mapped IPv6 is IPv4,
    as Java's InetAddress reads them.
    """
    if _IPV4_RE.fullmatch(text):
        octets = [int(part) for part in text.split(".")]
        if any(octet > 255 for octet in octets):
            return None
        return 4, int.from_bytes(bytes(octets), "big")
    if _IPV6_RE.fullmatch(text):
        try:
            address = ipaddress.IPv6Address(text)
        except ValueError:
            return None
        if address.ipv4_mapped is not None:
            return 4, int(address.ipv4_mapped)
        return 6, int(address)
    return None


def _ignore_case_regex(text: str) -> str:
    # event-ruler matches each pattern character against its lower- and upper-case
    # forms (either of which may be several characters long, e.g. "ß" -> "SS").
    parts = []
    for char in text:
        forms = sorted({char.lower(), char.upper()}, key=len, reverse=True)
        escaped = [re.escape(form) for form in forms]
        parts.append(escaped[0] if len(escaped) == 1 else f"(?:{'|'.join(escaped)})")
    return "".join(parts)


def _wildcard_tokens(value: str, path: str) -> list[str | None]:
    """Literal characters and None for `*`; rejects what event-ruler's parser rejects."""
    tokens: list[str | None] = []
    i = 0
    while i < len(value):
        char = value[i]
        if char == "*":
            if value[i + 1 : i + 2] == "*":
                raise InvalidEventPatternError(
                    path, f'wildcard "{value}" has consecutive * at position {i}; use a single *'
                )
            tokens.append(None)
        elif char == "\\":
            if value[i + 1 : i + 2] not in ("*", "\\"):
                raise InvalidEventPatternError(
                    path,
                    f'wildcard "{value}" has an invalid escape at position {i}; only \\* '
                    "(a literal star) and \\\\ (a backslash) are allowed",
                )
            tokens.append(value[i + 1])
            i += 1
        else:
            tokens.append(char)
        i += 1
    return tokens


def _wildcard_test(tokens: list[str | None]) -> Callable[[str], bool]:
    """Whether a string matches the wildcard, in time linear in the string's length.

    The literal runs between the `*`s are matched greedily: the first as a prefix, the
    last as a suffix, each one between them at its leftmost place after the one before
    (`str.find`). Taking the leftmost place never loses a match, since `*` matches any
    run, so no backtracking is needed (a regex like `.*a.*a.*b` backtracks: polynomial).
    """
    segments = [""]
    for token in tokens:
        if token is None:
            segments.append("")
        else:
            segments[-1] += token
    if len(segments) == 1:
        exact = segments[0]
        return lambda v: v == exact
    first, *middle, last = segments
    fixed = len(first) + len(last)

    def test(value: str) -> bool:
        if len(value) < fixed or not value.startswith(first) or not value.endswith(last):
            return False
        start, end = len(first), len(value) - len(last)
        for segment in middle:
            found = value.find(segment, start, end)
            if found < 0:
                return False
            start = found + len(segment)
        return True

    return test


def _wildcard_complexity(token_lists: Iterable[list[str | None]]) -> int:
    """event-ruler's MachineComplexityEvaluator score for one field's wildcards.

    Each pattern (between the quotes event-ruler wraps string values in) is a chain
    of states; `*` adds a state looping on every character, and the literal after a
    `*` is also reachable straight from the state before it. The score is the most
    states a worst-case input can keep alive at once, plus the `*` states they can
    enter next. The subset search stops as soon as the limit is passed.
    """
    literal: list[dict[str, list[int]]] = [{}]
    star: list[list[int]] = [[]]
    for tokens in token_lists:
        chain = ['"', *tokens, '"']
        current, previous = 0, -1
        for i, token in enumerate(chain):
            literal.append({})
            star.append([])
            new = len(literal) - 1
            if token is None:
                star[current].append(new)
                star[new].append(new)
            else:
                literal[current].setdefault(token, []).append(new)
                if i > 0 and chain[i - 1] is None:
                    literal[previous].setdefault(token, []).append(new)
            previous, current = current, new
    alphabet = {c for transitions in literal for c in transitions} | {""}
    seen: set[frozenset[int]] = set()
    pending = [frozenset((0,))]
    worst = 0
    while pending:
        active = pending.pop()
        for char in alphabet:
            step = {n for s in active for n in star[s]}
            step.update(n for s in active for n in literal[s].get(char, ()))
            if not step:
                continue
            score = len(step) + len({w for s in step for w in star[s]} - step)
            if score > _WILDCARD_COMPLEXITY_LIMIT:
                return score
            worst = max(worst, score)
            key = frozenset(step)
            if key not in seen:
                seen.add(key)
                pending.append(key)
    return worst


def _check_number(value: Any, path: str, what: str) -> Decimal:
    if not _is_number(value) or (isinstance(value, float) and not math.isfinite(value)):
        raise InvalidEventPatternError(path, f"{what} must be a number, not {_describe(value)}")
    number = Decimal(repr(value)) if isinstance(value, float) else Decimal(value)
    if abs(number) > _NUMERIC_LIMIT:
        raise InvalidEventPatternError(
            path,
            f"{what} {value} is out of range; EventBridge compares numbers between "
            f"-{_NUMERIC_LIMIT} and {_NUMERIC_LIMIT} inclusive",
        )
    exponent = number.normalize().as_tuple().exponent
    if isinstance(exponent, int) and -exponent > _NUMERIC_DECIMALS:
        raise InvalidEventPatternError(
            path,
            f"{what} {value} has more than {_NUMERIC_DECIMALS} digits after the decimal "
            "point, the precision EventBridge compares numbers at",
        )
    return number


def _describe(value: Any) -> str:
    if value is None or isinstance(value, bool):
        return json.dumps(value)
    if isinstance(value, str):
        return f'the string "{value}"'
    if _is_number(value):
        return f"the number {value}"
    kinds: dict[type, str] = {list: "an array", dict: "an object"}
    return kinds.get(type(value), type(value).__name__)


def _string_or_strings(value: Any, path: str, what: str, *, allow_empty: bool) -> list[str]:
    values = value if isinstance(value, list) else [value]
    for item in values:
        if not isinstance(item, str):
            raise InvalidEventPatternError(
                path, f"{what} must be a string or an array of strings, not {_describe(item)}"
            )
        if not allow_empty and item == "":
            raise InvalidEventPatternError(path, f"{what} must not be an empty string")
    return list(values)


@dataclass
class _FieldSpec:
    """One field of one $or branch while compiling: its path and its alternatives.

    `shown` is the path as written (with `$or[i]`), used in error messages."""

    shown: str
    exact_strings: set[str]
    exact_numbers: set[Any]
    literals: set[Any]  # True, False, None as JSON literals
    tests: list[Test]
    wildcards: list[list[str | None]]
    absent_ok: bool = False
    any_value: bool = False


def _new_spec(shown: str) -> _FieldSpec:
    return _FieldSpec(shown, set(), set(), set(), [], [])


def _prefix_test(value: Any, path: str, *, what: str) -> Test:
    """`prefix`/`suffix`: a string, or {"equals-ignore-case": string}."""
    is_prefix = what == "prefix"
    if isinstance(value, dict):
        if list(value) != ["equals-ignore-case"] or not isinstance(
            value["equals-ignore-case"], str
        ):
            raise InvalidEventPatternError(
                path, f'{what} must be a string or {{"equals-ignore-case": "<string>"}}'
            )
        body = _ignore_case_regex(value["equals-ignore-case"])
        if is_prefix:
            regex = re.compile(body)
            return lambda v: isinstance(v, str) and regex.match(v) is not None
        regex = re.compile(f"(?:{body})\\Z")
        return lambda v: isinstance(v, str) and regex.search(v) is not None
    if not isinstance(value, str):
        raise InvalidEventPatternError(
            path,
            f'{what} must be a string or {{"equals-ignore-case": "<string>"}}, '
            f"not {_describe(value)}",
        )
    text = value
    if is_prefix:
        return lambda v: isinstance(v, str) and v.startswith(text)
    return lambda v: isinstance(v, str) and v.endswith(text)


def _numeric_test(terms: Any, path: str) -> Test:
    if not isinstance(terms, list):
        raise InvalidEventPatternError(
            path, f'numeric must be an array like [">", 0, "<=", 5], not {_describe(terms)}'
        )
    allowed = ", ".join(_NUMERIC_OPS)
    pairs: list[tuple[str, Decimal]] = []
    for i in range(0, len(terms), 2):
        op = terms[i]
        if not isinstance(op, str) or op not in _NUMERIC_OPS:
            shown = f'"{op}"' if isinstance(op, str) else _describe(op)
            raise InvalidEventPatternError(
                path, f"numeric operator {shown} is not allowed; use one of {allowed}"
            )
        if i + 1 >= len(terms):
            raise InvalidEventPatternError(path, f'numeric operator "{op}" needs a number after it')
        pairs.append((op, _check_number(terms[i + 1], path, f'numeric value for "{op}"')))
    if not pairs:
        raise InvalidEventPatternError(path, 'numeric must not be empty; e.g. [">", 0, "<=", 5]')
    first = pairs[0][0]
    if len(pairs) > 2 or (
        len(pairs) == 2 and (first not in (">", ">=") or pairs[1][0] in (">", ">=", "="))
    ):
        raise InvalidEventPatternError(
            path,
            'numeric takes one comparison, or a range written as a lower bound (">" or '
            '">=") followed by an upper bound ("<" or "<=")',
        )
    if len(pairs) == 2 and pairs[0][1] >= pairs[1][1]:
        raise InvalidEventPatternError(
            path,
            f"numeric range lower bound {pairs[0][1]} must be less than upper bound {pairs[1][1]}",
        )
    checks = {
        "<": lambda v, b: v < b,
        "<=": lambda v, b: v <= b,
        "=": lambda v, b: v == b,
        ">": lambda v, b: v > b,
        ">=": lambda v, b: v >= b,
    }
    # Compared as floats: bounds have at most 6 decimals within +-5e9, which a double
    # holds to the ~15 significant digits event-ruler promises, and the event's number
    # was a double already once parsed.
    compiled = [(checks[op], float(bound)) for op, bound in pairs]
    limit = float(_NUMERIC_LIMIT)

    def test(v: Any) -> bool:
        if not _is_number(v):
            return False
        number = float(v)
        # Numbers outside event-ruler's comparable range never match a numeric test.
        if not -limit <= number <= limit:  # also False for NaN
            return False
        return all(check(number, bound) for check, bound in compiled)

    return test


def _cidr_test(value: Any, path: str) -> Test:
    if not isinstance(value, str):
        raise InvalidEventPatternError(
            path, f'cidr must be a string like "10.0.0.0/24", not {_describe(value)}'
        )
    parts = value.split("/")
    if len(parts) != 2:
        raise InvalidEventPatternError(
            path, f'cidr "{value}" needs exactly one "/", like "10.0.0.0/24"'
        )
    address, bits_text = parts
    if not re.fullmatch(r"[+-]?[0-9]+", bits_text):
        raise InvalidEventPatternError(path, f'cidr "{value}": mask bits must be an integer')
    bits = int(bits_text)
    parsed = _parse_ip(address)
    if parsed is None:
        raise InvalidEventPatternError(
            path, f'cidr "{value}": "{address}" is not an IPv4 or IPv6 address'
        )
    version, number = parsed
    width = 32 if version == 4 else 128
    # event-ruler refuses /32 and /128 (a single address is written as a plain string).
    if not 0 <= bits < width:
        raise InvalidEventPatternError(
            path,
            f'cidr "{value}": IPv{version} mask bits must be between 0 and {width - 1}; '
            "match a single address with a plain string instead",
        )
    host_mask = (1 << (width - bits)) - 1
    low, high = number & ~host_mask, number | host_mask

    def test(v: Any) -> bool:
        ip = _parse_ip(v) if isinstance(v, str) else None
        return ip is not None and ip[0] == version and low <= ip[1] <= high

    return test


def _anything_but_test(value: Any, path: str, spec: _FieldSpec) -> Test:
    forms = ", ".join(_ANYTHING_BUT_FORMS)
    if isinstance(value, dict):
        if len(value) != 1 or next(iter(value)) not in _ANYTHING_BUT_FORMS:
            shown = ", ".join(f'"{k}"' for k in value) or "nothing"
            raise InvalidEventPatternError(
                path, f"anything-but object must have exactly one of {forms}; got {shown}"
            )
        form, inner = next(iter(value.items()))
        if form == "wildcard":
            texts = _string_or_strings(inner, path, "anything-but wildcard", allow_empty=True)
            token_lists = [_wildcard_tokens(t, path) for t in texts]
            spec.wildcards.extend(token_lists)
            globs = [_wildcard_test(tokens) for tokens in token_lists]
            return lambda v: not (isinstance(v, str) and any(glob(v) for glob in globs))
        if form == "equals-ignore-case":
            texts = _string_or_strings(inner, path, f"anything-but {form}", allow_empty=True)
            regexes = [re.compile(_ignore_case_regex(t)) for t in texts]
            return lambda v: not (isinstance(v, str) and any(r.fullmatch(v) for r in regexes))
        affixes = tuple(_string_or_strings(inner, path, f"anything-but {form}", allow_empty=False))
        if form == "prefix":
            return lambda v: not (isinstance(v, str) and v.startswith(affixes))
        return lambda v: not (isinstance(v, str) and v.endswith(affixes))

    values = value if isinstance(value, list) else [value]
    strings = [v for v in values if isinstance(v, str)]
    numbers = [v for v in values if _is_number(v)]
    if not values or len(strings) + len(numbers) != len(values) or (strings and numbers):
        raise InvalidEventPatternError(
            path,
            "anything-but must be a string, a number, a non-empty array of only strings "
            f"or only numbers, or an object with one of {forms}; got {_describe(value)}",
        )
    if strings:
        excluded_strings = frozenset(strings)
        return lambda v: not (isinstance(v, str) and v in excluded_strings)
    excluded = frozenset(float(_check_number(n, path, "anything-but number")) for n in numbers)

    def test(v: Any) -> bool:
        return not _is_number(v) or float(v) not in excluded

    return test


def _exists(value: Any, path: str, spec: _FieldSpec) -> None:
    if not isinstance(value, bool):
        raise InvalidEventPatternError(
            path, f"exists must be true or false, not {_describe(value)}"
        )
    if value:
        spec.any_value = True
    else:
        spec.absent_ok = True


def _equals_ignore_case(value: Any, path: str, spec: _FieldSpec) -> None:
    if not isinstance(value, str):
        raise InvalidEventPatternError(
            path, f"equals-ignore-case must be a string, not {_describe(value)}"
        )
    regex = re.compile(_ignore_case_regex(value))
    spec.tests.append(lambda v: isinstance(v, str) and regex.fullmatch(v) is not None)


def _wildcard(value: Any, path: str, spec: _FieldSpec) -> None:
    if not isinstance(value, str):
        raise InvalidEventPatternError(path, f"wildcard must be a string, not {_describe(value)}")
    tokens = _wildcard_tokens(value, path)
    spec.wildcards.append(tokens)
    glob = _wildcard_test(tokens)
    spec.tests.append(lambda v: isinstance(v, str) and glob(v))


_EXPRESSIONS: dict[str, Callable[[Any, str, _FieldSpec], None]] = {
    "anything-but": lambda v, path, spec: spec.tests.append(_anything_but_test(v, path, spec)),
    "cidr": lambda v, path, spec: spec.tests.append(_cidr_test(v, path)),
    "equals-ignore-case": _equals_ignore_case,
    "exists": _exists,
    "numeric": lambda v, path, spec: spec.tests.append(_numeric_test(v, path)),
    "prefix": lambda v, path, spec: spec.tests.append(_prefix_test(v, path, what="prefix")),
    "suffix": lambda v, path, spec: spec.tests.append(_prefix_test(v, path, what="suffix")),
    "wildcard": _wildcard,
}


def _add_expression(expression: dict[str, Any], path: str, spec: _FieldSpec) -> None:
    operators = ", ".join(_EXPRESSIONS)
    if len(expression) != 1:
        raise InvalidEventPatternError(
            path,
            f"a match expression has exactly one operator, one of {operators}; "
            f"got {len(expression)}",
        )
    op, value = next(iter(expression.items()))
    handler = _EXPRESSIONS.get(op)
    if handler is None:
        raise InvalidEventPatternError(
            path, f'unknown operator "{op}" (operators are case-sensitive); use one of {operators}'
        )
    handler(value, path, spec)


def _same_ip_test(ip: tuple[int, int]) -> Test:
    return lambda v: isinstance(v, str) and _parse_ip(v) == ip


def _compile_values(values: list[Any], path: str) -> _FieldSpec:
    if not values:
        raise InvalidEventPatternError(
            path, "empty arrays are not allowed; give at least one value or match expression"
        )
    spec = _new_spec(path)
    for value in values:
        if isinstance(value, dict):
            _add_expression(value, path, spec)
        elif isinstance(value, str):
            # A string that is an IP address matches that address however the event
            # writes it (event-ruler turns it into a one-address range).
            ip = _parse_ip(value)
            if ip is None:
                spec.exact_strings.add(value)
            else:
                spec.tests.append(_same_ip_test(ip))
        elif value is None or isinstance(value, bool):
            spec.literals.add(value)
        elif _is_number(value):
            spec.exact_numbers.add(value)
        else:
            raise InvalidEventPatternError(
                path,
                "match values must be strings, numbers, true, false, null or match "
                f'expressions like {{"prefix": "a"}}; got {_describe(value)}',
            )
    return spec


Branch: TypeAlias = dict[str, _FieldSpec]


def _parse_object(
    branches: list[Branch], prefix_path: str, obj: dict[str, Any], shown: str, in_or: bool
) -> None:
    """Mirror of event-ruler's JsonRuleCompiler: fields AND together, each `$or` forks
    every branch built so far, and a later duplicate of a path replaces the earlier."""
    if not obj:
        raise InvalidEventPatternError(
            shown or "pattern", "empty objects are not allowed; give at least one field"
        )
    for key, value in obj.items():
        field_shown = f"{shown}.{key}" if shown else key
        if key == "$or":
            _parse_or(branches, prefix_path, value, field_shown)
            continue
        if in_or and key in _RESERVED_IN_OR:
            raise InvalidEventPatternError(
                field_shown, f'"{key}" is reserved and cannot be a field name inside $or'
            )
        path = f"{prefix_path}.{key}" if prefix_path else key
        if isinstance(value, dict):
            _parse_object(branches, path, value, field_shown, in_or)
        elif isinstance(value, list):
            spec = _compile_values(value, field_shown)
            if not branches:
                branches.append({})
            for branch in branches:
                branch[path] = spec
        else:
            raise InvalidEventPatternError(
                field_shown,
                'must be an array of match values (e.g. ["a"]) or an object of fields, '
                f"not {_describe(value)}",
            )


def _parse_or(branches: list[Branch], prefix_path: str, value: Any, shown: str) -> None:
    if not isinstance(value, list) or len(value) < 2:
        raise InvalidEventPatternError(shown, "$or must be an array of at least 2 objects")
    before = [dict(branch) for branch in branches]
    branches.clear()
    for i, alternative in enumerate(value):
        if not isinstance(alternative, dict):
            raise InvalidEventPatternError(
                f"{shown}[{i}]", f"$or may only contain objects, not {_describe(alternative)}"
            )
        forked = [dict(branch) for branch in before] or [{}]
        _parse_object(forked, prefix_path, alternative, f"{shown}[{i}]", in_or=True)
        branches.extend(forked)


# ------------------------------------------------------------------------- matching


@dataclass(frozen=True, slots=True)
class _Field:
    path: str
    test: Test
    absent_ok: bool


Leaf: TypeAlias = tuple[Any, tuple[tuple[int, int], ...]]


def _field_test(spec: _FieldSpec) -> Test:
    strings = frozenset(spec.exact_strings)
    numbers = frozenset(spec.exact_numbers)
    match_true, match_false, match_null = (
        True in spec.literals,
        False in spec.literals,
        None in spec.literals,
    )
    tests = tuple(spec.tests)
    any_value = spec.any_value

    def test(v: Any) -> bool:
        if any_value:
            return True
        if isinstance(v, str):
            if v in strings:
                return True
        elif v is None:
            if match_null:
                return True
        elif isinstance(v, bool):
            # Checked before numbers: JSON true is not the number 1.
            if match_true if v else match_false:
                return True
        elif _is_number(v) and v in numbers:
            return True
        return any(t(v) for t in tests)

    return test


class CompiledPattern:
    """A validated pattern, ready to match many events.

    `pattern` is the pattern as a dict. `matches(event)` takes the full event (the
    envelope with `detail`), as a dict or a JSON string.
    """

    __slots__ = ("_branches", "_depth", "_paths", "_prefixes", "_text")

    def __init__(self, pattern: dict[str, Any], branches: list[Branch]) -> None:
        self._depth = _value_depth(pattern)
        with _room_for(self._depth):
            self._text = _compact_json(pattern)
        self._branches = [
            tuple(
                _Field(path, _field_test(spec), spec.absent_ok)
                # event-ruler visits fields in sorted order; that order decides which
                # array elements an `exists: false` check is consistent with.
                for path, spec in sorted(branch.items())
            )
            for branch in branches
        ]
        self._paths = frozenset(path for branch in branches for path in branch)
        # Every dot-joined prefix of a field path: the event is walked only where a
        # pattern field could be (keys may themselves contain dots).
        self._prefixes = frozenset(
            ".".join(parts[:i])
            for path in self._paths
            for parts in [path.split(".")]
            for i in range(1, len(parts))
        )

    @property
    def pattern(self) -> dict[str, Any]:
        """The pattern as a plain dict (a fresh copy: compiled patterns are shared)."""
        with _room_for(self._depth):
            return json.loads(self._text)

    def to_json(self) -> str:
        """The pattern as compact JSON."""
        return self._text

    def matches(self, event: Mapping[str, Any] | str) -> bool:
        """Whether EventBridge would deliver `event` to a rule with this pattern.

        Raises ValueError if `event` is not a JSON object, or is JSON text that
        EventBridge would refuse (see `parse_json`).
        """
        if isinstance(event, str):
            try:
                event = parse_json(event)
            except ValueError as exc:
                raise ValueError(f"event is not valid JSON ({exc})") from None
        if not isinstance(event, Mapping):
            raise ValueError(f"event must be a JSON object, not {_describe(event)}")
        leaves, nested_arrays = self._leaves(event)
        for fields in self._branches:
            if nested_arrays:
                if _search(fields, 0, {}, leaves):
                    return True
            elif _all_match(fields, leaves):
                return True
        return False

    def _leaves(self, event: Mapping[str, Any]) -> tuple[dict[str, list[Leaf]], bool]:
        """Leaf values at the pattern's paths, each with the array elements it sits in.

        Arrays are transparent (each element is a value of the same path) and empty
        arrays and objects contribute nothing, so `exists` sees only leaves. Only
        arrays that hold objects or arrays get an identity: two fields can only
        disagree about which element they came from inside those.
        """
        leaves: dict[str, list[Leaf]] = {}
        paths, prefixes = self._paths, self._prefixes
        next_array = 0
        nested = False
        # Depth-first, in document order, with an explicit stack: an event may nest
        # arrays up to MAX_NESTING_DEPTH levels, deeper than Python's recursion allows.
        pending: list[tuple[Any, str, tuple[tuple[int, int], ...]]] = [(event, "", ())]
        while pending:
            node, path, membership = pending.pop()
            if isinstance(node, Mapping):
                children = []  # pushed in reverse, so popped in document order
                for key, child in node.items():
                    child_path = f"{path}.{key}" if path else str(key)
                    if child_path in paths or child_path in prefixes:
                        children.append((child, child_path, membership))
                pending.extend(reversed(children))
            elif isinstance(node, list | tuple):
                if any(isinstance(item, Mapping | list | tuple) for item in node):
                    nested = True
                    array_id, next_array = next_array, next_array + 1
                    pending.extend(
                        (item, path, (*membership, (array_id, index)))
                        for index, item in reversed(list(enumerate(node)))
                    )
                else:
                    pending.extend((item, path, membership) for item in reversed(node))
            elif path in paths:
                leaves.setdefault(path, []).append((node, membership))
        return leaves, nested


def _all_match(fields: tuple[_Field, ...], leaves: dict[str, list[Leaf]]) -> bool:
    for field in fields:
        candidates = leaves.get(field.path)
        if candidates:
            if not any(field.test(value) for value, _ in candidates):
                return False
        elif not field.absent_ok:
            return False
    return True


def _search(
    fields: tuple[_Field, ...],
    i: int,
    chosen: dict[int, int],
    leaves: dict[str, list[Leaf]],
) -> bool:
    """Array-consistent matching (event-ruler's rulesForJSONEvent): the values that
    satisfy the fields must not come from different elements of the same array."""
    if i == len(fields):
        return True
    field = fields[i]
    consistent = [
        (value, membership)
        for value, membership in leaves.get(field.path, ())
        if all(chosen.get(array, index) == index for array, index in membership)
    ]
    if not consistent:
        return field.absent_ok and _search(fields, i + 1, chosen, leaves)
    for value, membership in consistent:
        if field.test(value) and _search(fields, i + 1, {**chosen, **dict(membership)}, leaves):
            return True
    return False


def compile_pattern(
    pattern: Mapping[str, Any] | str | Pattern,
    *,
    max_length: int = DEFAULT_MAX_PATTERN_LENGTH,
) -> CompiledPattern:
    """Validate `pattern` (see `validate_pattern`) and compile it for matching.

    `max_length` defaults to 2048, the default pattern size quota. Compiled patterns
    are cached by their JSON text, so compiling the same pattern again is cheap.
    """
    if isinstance(pattern, Pattern):
        return pattern.compile()
    return _compile_cached(_pattern_text(pattern, max_length))


@functools.lru_cache(maxsize=512)
def _compile_cached(text: str) -> CompiledPattern:
    pattern = _load_json(text, "pattern")
    # The compiler recurses once per level of the pattern (at most MAX_NESTING_DEPTH).
    with _room_for(_value_depth(pattern)):
        return _compile(pattern)


def _compile(pattern: Any) -> CompiledPattern:
    if not isinstance(pattern, dict):
        raise InvalidEventPatternError(
            "pattern",
            f'must be a JSON object like {{"source": ["my.app"]}}, not {_describe(pattern)}',
        )
    branches: list[Branch] = []
    _parse_object(branches, "", pattern, "", in_or=False)
    for branch in branches:
        for spec in branch.values():
            if spec.wildcards:
                score = _wildcard_complexity(spec.wildcards)
                if score > _WILDCARD_COMPLEXITY_LIMIT:
                    raise InvalidEventPatternError(
                        spec.shown,
                        "rule is too complex (wildcard complexity "
                        f"{score} > {_WILDCARD_COMPLEXITY_LIMIT}); use fewer wildcard "
                        "characters or fewer repeating character sequences after a wildcard",
                    )
    return CompiledPattern(pattern, branches)


def matches(
    pattern: Mapping[str, Any] | str | Pattern,
    event: Mapping[str, Any] | str,
    *,
    max_length: int = DEFAULT_MAX_PATTERN_LENGTH,
) -> bool:
    """Whether EventBridge would deliver `event` to a rule with `pattern`.

    Validates the pattern first (`InvalidEventPatternError`); `max_length` defaults
    to 2048. For many events, compile once with `compile_pattern`.
    """
    return compile_pattern(pattern, max_length=max_length).matches(event)
