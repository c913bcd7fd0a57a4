"""References that code captured before the runtime replaced what they point at.

Replacing `time.sleep` or `datetime.datetime` in their module reaches the code that
looks them up at call time (`time.sleep(1)`, `datetime.datetime.now()`), not the code
that captured the object earlier: a module-level `from time import time` or `from
datetime import datetime`, a default argument (`clock=time.time`, botocore's
`RetryHandler(sleep=time.sleep)`), a class attribute, a bound classmethod kept as a
default (`now=datetime.now`). `rebind_captured` finds those in the modules imported so
far and points them at the replacement, through `Patches` (undone by the runtime's
uninstall). Closures and instances made earlier keep what they hold.
"""

from __future__ import annotations

import sys
import types
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from eventcraft_sandbox.lambda_runtime.moto_hooks import Patches

__all__ = ["Replacements", "rebind_captured"]

# A classmethod taken from its class (`datetime.now`): a new object at each access.
_BOUND = frozenset({types.BuiltinMethodType, types.MethodType})


class Replacements:
    """What replaces what: `{original: replacement}`, matched by identity.

    A bound classmethod of a replaced class (`datetime.now`) is matched by its class
    and its name, for the names in `bound_names`.
    """

    def __init__(self, pairs: Mapping[Any, Any], *, bound_names: Iterable[str] = ()) -> None:
        self._by_id = {id(original): (original, new) for original, new in pairs.items()}
        self._bound_names = frozenset(bound_names)
        self.ids = frozenset(self._by_id)  # for quick tests, before `get`

    def inverse(self) -> Replacements:
        """The replacements put back (for what was captured while they were in place)."""
        return Replacements(
            {new: original for original, new in self._by_id.values()},
            bound_names=self._bound_names,
        )

    def get(self, value: Any) -> Any | None:
        """The replacement of `value`, or None."""
        pair = self._by_id.get(id(value))
        if pair is not None and pair[0] is value:
            return pair[1]
        if type(value) in _BOUND and value.__name__ in self._bound_names:
            owner = self._by_id.get(id(value.__self__))
            if owner is not None and owner[0] is value.__self__:
                return getattr(owner[1], value.__name__)
        return None

    def any_in(self, values: Iterable[Any]) -> bool:
        """Whether some of `values` may have a replacement (quick, C-speed)."""
        values = tuple(values)
        return not (self.ids.isdisjoint(map(id, values)) and _BOUND.isdisjoint(map(type, values)))


def rebind_captured(
    patches: Patches,
    replacements: Replacements,
    *,
    modules: Iterable[tuple[str, types.ModuleType]] | None = None,
    skip: Iterable[str] = (),
) -> None:
    """Point every captured reference to a replaced object at its replacement, in
    `modules` (default: every module imported so far) but those named in `skip`.
    (It looks at every global of every module: kept quick for the runtime's install.)"""
    skipped = frozenset(skip)
    ids = replacements.ids
    for name, module in list(sys.modules.items()) if modules is None else modules:
        namespace = getattr(module, "__dict__", None)
        if name in skipped or not isinstance(namespace, dict):
            continue
        for attribute, value in list(namespace.items()):
            kind = type(value)
            if id(value) in ids or kind in _BOUND:
                new = replacements.get(value)
                if new is not None:  # `from time import time`
                    patches.set(module, attribute, new)
                    continue
            if kind is types.FunctionType:
                _rebind_defaults(patches, replacements, value)
            elif isinstance(value, type) and vars(value).get("__module__") == name:
                # vars(), not getattr(): lazy modules (six.moves) import on attribute access
                _rebind_class(patches, replacements, value)


def _rebind_class(patches: Patches, replacements: Replacements, cls: type) -> None:
    ids = replacements.ids
    for attribute, member in list(vars(cls).items()):
        kind = type(member)
        if id(member) in ids or kind in _BOUND:
            new = replacements.get(member)
            if new is not None:  # a class attribute: `clock = time.time`
                # A builtin is not bound as a method: neither may its replacement be.
                static = type(new) is types.FunctionType
                patches.set(cls, attribute, staticmethod(new) if static else new)
                continue
        function = member.__func__ if kind is staticmethod or kind is classmethod else member
        if type(function) is types.FunctionType:
            _rebind_defaults(patches, replacements, function)


def _rebind_defaults(
    patches: Patches, replacements: Replacements, function: types.FunctionType
) -> None:
    defaults = function.__defaults__
    if defaults and replacements.any_in(defaults):
        rebound = tuple(_or_same(replacements, d) for d in defaults)
        if any(new is not old for new, old in zip(rebound, defaults, strict=True)):
            patches.set(function, "__defaults__", rebound)
    keyword = function.__kwdefaults__
    if keyword and replacements.any_in(keyword.values()):
        rebound_kw = {k: _or_same(replacements, d) for k, d in keyword.items()}
        if any(rebound_kw[k] is not d for k, d in keyword.items()):
            patches.set(function, "__kwdefaults__", rebound_kw)


def _or_same(replacements: Replacements, value: Any) -> Any:
    new = replacements.get(value)
    return value if new is None else new
