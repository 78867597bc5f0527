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
    machines write, at every depth, must be in it."""
    from datetime import UTC, datetime

    from mlpipeline.api.models import MLPipelineStatus, ServeSpec
    from mlpipeline.engine import serving
    from mlpipeline.engine.reconcile import decide

    from tests.unit.test_reconcile import RUN, done, spec

    now = datetime(2026, 1, 1, tzinfo=UTC)
    steps = done("ingest", "preprocess", "tune", "evaluate", "package")
    status = decide("iris", spec(), MLPipelineStatus(), RUN, "create", 1, steps, now).status
    first = serving.decide(ServeSpec(), None, "a", "replicas", None, None, now)
    started = serving.decide(ServeSpec(), first.status, "b", "replicas", "pause", None, now)
    status.serving = started.status.model_copy(update={"checks": serving_checks(), "no_data_since": "x"})
    assert status.serving.control is not None
    assert_declared(status.to_wire(), {"type": "object", "properties": openapi_status()})


def serving_checks() -> list[Any]:
    from mlpipeline.api.models import AnalysisCheck

    return [AnalysisCheck(name="x", query="q", value=1.0, threshold=1.0, verdict="pass", stable=0.5)]


def assert_declared(value: Any, schema: dict[str, Any], path: str = "status") -> None:
    if isinstance(value, dict) and "properties" in schema:
        for key, item in value.items():
            assert key in schema["properties"], f"{path}.{key} is not in the CRD's status schema"
            assert_declared(item, schema["properties"][key], f"{path}.{key}")
    elif isinstance(value, list) and "items" in schema:
        for item in value:
            assert_declared(item, schema["items"], f"{path}[]")


def openapi_status() -> dict[str, Any]:
    version = build_crd()["spec"]["versions"][0]
    return version["schema"]["openAPIV3Schema"]["properties"]["status"]["properties"]  # type: ignore[no-any-return]
