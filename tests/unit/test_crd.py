"""The generated CRD: up to date, structural, and documented enough for `kubectl explain`."""

from __future__ import annotations

from typing import Any

import yaml
from mlpipeline.api.crd import build_crd, render_crd

from tests.conftest import ROOT

CRD_FILE = ROOT / "crds" / "mlpipeline.dev_mlpipelines.yaml"


def spec_schema() -> dict[str, Any]:
    version = build_crd()["spec"]["versions"][0]
    return version["schema"]["openAPIV3Schema"]["properties"]["spec"]  # type: ignore[no-any-return]


def walk(node: Any, path: str = "") -> Any:
    if isinstance(node, dict):
        yield path, node
        for key, value in node.items():
            yield from walk(value, f"{path}.{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from walk(value, f"{path}[{i}]")


def test_committed_crd_is_not_stale() -> None:
    assert CRD_FILE.read_text() == render_crd(), "crds/ is stale: run `make crds`"


def test_schema_is_structural() -> None:
    for path, node in walk(spec_schema()):
        assert "$ref" not in node and "anyOf" not in node and "title" not in node, path
        if path.endswith(".properties"):
            for name, prop in node.items():
                typed = "type" in prop or "x-kubernetes-preserve-unknown-fields" in prop
                typed = typed or "x-kubernetes-int-or-string" in prop
                assert typed, f"{path}.{name} has no type"


def test_exclusive_bounds_use_openapi_v3_0_flags() -> None:
    test_size = spec_schema()["properties"]["data"]["properties"]["testSize"]
    assert test_size["minimum"] == 0 and test_size["exclusiveMinimum"] is True
    assert test_size["maximum"] == 1 and test_size["exclusiveMaximum"] is True


def test_enums_defaults_bounds_and_descriptions() -> None:
    tune = spec_schema()["properties"]["train"]["properties"]["tune"]
    props = tune["properties"]
    assert props["algorithm"]["enum"] == ["grid", "random", "bayesian"]
    assert props["algorithm"]["default"] == "random"
    assert props["trials"]["minimum"] == 1 and props["trials"]["maximum"] == 1000
    assert "Optuna" in props["algorithm"]["description"]
    assert tune["required"] == ["searchSpace"]
    steps = spec_schema()["properties"]["serve"]["properties"]["canary"]["properties"]["steps"]
    assert steps["items"] == {"type": "integer", "minimum": 1, "maximum": 100}


def test_cross_field_rules_are_cel() -> None:
    rules = [
        rule["rule"] for _, node in walk(spec_schema()) for rule in node.get("x-kubernetes-validations", [])
    ]
    assert any("isSorted()" in r for r in rules)  # canary steps
    assert any("self.algorithm != 'grid'" in r for r in rules)
    assert any("has(self.randint)" in r for r in rules)


def test_names_columns_and_status_subresource() -> None:
    crd = yaml.safe_load(CRD_FILE.read_text())
    assert crd["spec"]["names"]["shortNames"] == ["mlp"]
    version = crd["spec"]["versions"][0]
    assert version["subresources"] == {"status": {}}
    columns = [c["name"] for c in version["additionalPrinterColumns"]]
    assert columns[:2] == ["Phase", "Model"] and "Age" in columns and "Canary" in columns
    status = version["schema"]["openAPIV3Schema"]["properties"]["status"]
    assert status["x-kubernetes-preserve-unknown-fields"] is True


def test_status_schema_keeps_every_field_the_engines_write() -> None:
    """The API server prunes status fields the schema does not declare: every key the state
    machines write must be in it."""
    from datetime import UTC, datetime

    from mlpipeline.api.models import CanarySpec
    from mlpipeline.engine import canary
    from mlpipeline.engine.reconcile import decide

    from tests.unit.test_reconcile import RUN, done, spec

    status = openapi_status()
    serving = set(status["serving"]["properties"])
    now = datetime(2026, 1, 1, tzinfo=UTC)
    state = canary.start("a", "b", CanarySpec(), now)
    ticked = canary.decide(state, CanarySpec(), [canary.CheckResult("x", "q", None, 1, "nodata")], now)
    assert set(ticked.state) | {"provider", "analyzedAt", "rolledBack"} <= serving
    assert set(status["serving"]["properties"]["checks"]["items"]["properties"]) >= {
        "query",
        "value",
        "verdict",
        "stable",
    }
    run = decide(
        "iris", spec(), {}, RUN, "create", 1, done("ingest", "preprocess", "tune", "evaluate", "package"), now
    )
    assert set(run.status["run"]) <= set(status["run"]["properties"])
    assert set(run.status) <= set(status)


def openapi_status() -> dict[str, Any]:
    version = build_crd()["spec"]["versions"][0]
    return version["schema"]["openAPIV3Schema"]["properties"]["status"]["properties"]  # type: ignore[no-any-return]
