"""The account's Lambda concurrency quota, which AWS checks when a function reserves
concurrency; `Sandbox` enforces it on every PutFunctionConcurrency (`ConcurrencyQuota`).

Lambda keeps part of the account's concurrent executions quota (AWS's usual 1000 per
Region; new accounts start lower) for the functions that reserve nothing: "You can
reserve up to the Unreserved account concurrency value minus 100" (Lambda Developer
Guide, "Configuring reserved concurrency"), and an account whose quota is under 100
can reserve nothing. PutFunctionConcurrency (a function's `reservedConcurrentExecutions`
at deploy) that would leave less is refused with InvalidParameterValueException
"Specified ReservedConcurrentExecutions for function decreases account's
UnreservedConcurrentExecution below its minimum value of [100]." (the number is the
quota itself when it is under 100, as AWS answers new accounts: "[10]", "[50]").

moto checks this only when MOTO_LAMBDA_CONCURRENCY_QUOTA is set in the environment,
with a minimum of 100 whatever the quota; the sandbox checks it always, for the
sandbox's lifetime, with the quota the sandbox was given (leave that variable unset).
"""

from __future__ import annotations

import argparse
from typing import Any, Final

__all__ = [
    "DEFAULT_CONCURRENCY_QUOTA",
    "MIN_UNRESERVED_CONCURRENCY",
    "ConcurrencyQuota",
    "check_concurrency_quota",
    "concurrency_quota_option",
]

DEFAULT_CONCURRENCY_QUOTA: Final = 1000
MIN_UNRESERVED_CONCURRENCY: Final = 100


def _not_a_quota(shown: str) -> str:
    return (
        f"{shown} is not a whole number >= 1 (the account's Lambda concurrent executions "
        f"quota; AWS's usual one is {DEFAULT_CONCURRENCY_QUOTA})"
    )


def check_concurrency_quota(value: object, *, name: str = "concurrency_quota") -> int:
    """`value` as a quota (a whole number >= 1), else ValueError naming `name`."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name}: {_not_a_quota(repr(value))}")
    return value


def concurrency_quota_option(text: str) -> int:
    """The `--concurrency-quota N` option's value (an argparse type: argparse names
    the option in its error, and exits with status 2)."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(_not_a_quota(text))
    return value


def unreserved_minimum(quota: int) -> int:
    """What Lambda keeps unreserved in an account with this quota."""
    return min(MIN_UNRESERVED_CONCURRENCY, quota)


class ConcurrencyQuota:
    """Refuses, as Lambda does, a reservation that would leave the account fewer than
    `unreserved_minimum(quota)` unreserved executions (module docstring).

    `install()` / `uninstall()` (or `with`): patches moto's
    `LambdaBackend.put_function_concurrency` (every client alike: the deploy, handlers,
    the administrator). The reservations counted are those of the backend's (account
    and Region's) other functions, as the quota is per Region.
    """

    def __init__(self, quota: int = DEFAULT_CONCURRENCY_QUOTA) -> None:
        self.quota = check_concurrency_quota(quota)
        self._original: Any = None

    def install(self) -> ConcurrencyQuota:
        from moto.awslambda.exceptions import InvalidParameterValueException
        from moto.awslambda.models import LambdaBackend

        if self._original is not None:
            return self
        original = LambdaBackend.put_function_concurrency
        quota = self.quota

        def put_function_concurrency(
            backend: Any, function_name: str, reserved_concurrency: Any
        ) -> Any:
            try:
                target = backend.get_function(function_name).function_name
            except Exception:  # moto's own not-found error comes from the original
                return original(backend, function_name, reserved_concurrency)
            others = sum(
                int(fn.reserved_concurrency)
                for fn in backend.list_functions()
                if fn.reserved_concurrency is not None and fn.function_name != target
            )
            minimum = unreserved_minimum(quota)
            if quota - others - int(reserved_concurrency) < minimum:
                raise InvalidParameterValueException(
                    "Specified ReservedConcurrentExecutions for function decreases account's "
                    f"UnreservedConcurrentExecution below its minimum value of [{minimum}]."
                )
            return original(backend, function_name, reserved_concurrency)

        LambdaBackend.put_function_concurrency = put_function_concurrency  # type: ignore[method-assign,assignment]
        self._original = original
        return self

    def uninstall(self) -> None:
        from moto.awslambda.models import LambdaBackend

        if self._original is not None:
            LambdaBackend.put_function_concurrency = self._original  # type: ignore[method-assign]
            self._original = None

    def __enter__(self) -> ConcurrencyQuota:
        return self.install()

    def __exit__(self, *exc: object) -> None:
        self.uninstall()
