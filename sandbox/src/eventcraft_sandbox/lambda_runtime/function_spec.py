"""One function version's configuration and code, read from moto's Lambda backend."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from eventcraft_sandbox.lambda_runtime.interface import LambdaRuntimeError


@dataclass(frozen=True)
class LayerCode:
    """One layer version's zip, as moto holds it."""

    arn: str
    sha256: str
    code: bytes = field(repr=False)


@dataclass(frozen=True)
class FunctionSpec:
    """One function version's configuration and code, read from moto."""

    name: str
    arn: str  # unqualified
    version: str
    account: str
    region: str
    handler: str
    runtime: str
    role: str
    environment: Mapping[str, str]
    timeout: float  # seconds
    memory_mb: int
    package_type: str
    code_sha256: str
    code: bytes = field(repr=False)
    layers: tuple[LayerCode, ...] = ()
    # PutFunctionConcurrency's ReservedConcurrentExecutions (None: unreserved): the
    # most invocations of the function in flight at once (`concurrency`).
    reserved_concurrency: int | None = None

    @property
    def qualified_arn(self) -> str:
        return f"{self.arn}:{self.version}"

    @property
    def log_group(self) -> str:
        return f"/aws/lambda/{self.name}"

    @property
    def key(self) -> str:
        """Identity of an execution environment: same code and configuration."""
        data = json.dumps(
            [
                self.qualified_arn, self.code_sha256, self.handler, self.runtime, self.role,
                sorted(self.environment.items()), self.timeout, self.memory_mb,
                [layer.sha256 for layer in self.layers],
            ],
            default=str,
        )  # fmt: skip
        return hashlib.sha256(data.encode()).hexdigest()

    @classmethod
    def from_moto(cls, fn: Any) -> FunctionSpec:
        """From moto's `LambdaFunction` (call with `MOTO_LOCK` held)."""
        from moto.awslambda.utils import get_backend

        backend = get_backend(fn.account_id, fn.region)
        layers = []
        for layer in fn.layers or []:
            version = backend.layers_versions_by_arn(layer["Arn"])
            if version is None:
                raise LambdaRuntimeError(f"{fn.function_name}: layer {layer['Arn']} is gone")
            layers.append(
                LayerCode(layer["Arn"], str(version.code_sha_256), bytes(version.code_bytes))
            )
        arn = f"arn:{fn.partition}:lambda:{fn.region}:{fn.account_id}:function:{fn.function_name}"
        return cls(
            name=fn.function_name,
            arn=arn,
            version=str(fn.version),
            account=fn.account_id,
            region=fn.region,
            handler=fn.handler or "",
            runtime=fn.run_time or "",
            role=fn.role,
            environment={str(k): str(v) for k, v in (fn.environment_vars or {}).items()},
            timeout=float(fn.timeout or 3),
            memory_mb=int(fn.memory_size or 128),
            package_type=fn.package_type or "Zip",
            code_sha256=str(fn.code_sha_256),
            code=bytes(getattr(fn, "code_bytes", b"") or b""),
            layers=tuple(layers),
            reserved_concurrency=_reserved_concurrency(backend, fn),
        )


def _reserved_concurrency(backend: Any, fn: Any) -> int | None:
    """The function's reserved concurrency: set on the function, for every version
    (moto keeps it on the unpublished one, $LATEST)."""
    try:
        latest = backend.get_function(fn.function_name)
    except Exception:  # moto's not-found: the version stands alone
        latest = fn
    reserved = getattr(latest, "reserved_concurrency", None)
    return None if reserved is None else int(reserved)
