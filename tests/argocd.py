"""The chart's Argo CD health check (charts/mlpipeline-operator/argocd/health.lua), run by a real
Lua 5.1 interpreter (lupa; Argo CD's gopher-lua implements 5.1) on an MLPipeline object, as Argo CD
runs it: the object is the global ``obj``, the script returns ``{status, message}``."""

from __future__ import annotations

from typing import Any

from lupa import lua51

from tests.conftest import ROOT

SCRIPT = ROOT / "charts" / "mlpipeline-operator" / "argocd" / "health.lua"


def health(obj: dict[str, Any]) -> tuple[str, str]:
    runtime = lua51.LuaRuntime(unpack_returned_tuples=True)
    runtime.globals().obj = _table(runtime, obj)
    result = runtime.execute(SCRIPT.read_text())
    return str(result["status"]), str(result["message"])


def _table(runtime: Any, value: Any) -> Any:
    """JSON-like Python values as Lua tables (nil for None), as Argo CD hands the object over."""
    if isinstance(value, dict):
        return runtime.table_from({k: _table(runtime, v) for k, v in value.items() if v is not None})
    if isinstance(value, list):
        return runtime.table_from([_table(runtime, v) for v in value])
    return value
