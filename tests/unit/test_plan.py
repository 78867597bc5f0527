"""Step fingerprints decide what is reused: a change invalidates its step and everything after."""

from __future__ import annotations

from mlpipeline.api.manifest import load_manifest
from mlpipeline.api.models import MLPipelineSpec
from mlpipeline.engine.plan import STEPS, StepInvocation, fingerprints, ingest_spec_key, with_data

from tests.conftest import EXAMPLES


def base() -> MLPipelineSpec:
    return load_manifest(EXAMPLES / "iris.yaml").spec


def changed(before: dict[str, str], after: dict[str, str]) -> list[str]:
    return [s for s in STEPS if before[s] != after[s]]


def test_same_inputs_same_fingerprints() -> None:
    assert fingerprints(base(), "d1", "iris") == fingerprints(base(), "d1", "iris")


def test_new_data_changes_every_step() -> None:
    assert changed(fingerprints(base(), "d1", "iris"), fingerprints(base(), "d2", "iris")) == list(STEPS)


def test_gate_change_reruns_evaluate_and_package_only() -> None:
    spec = base()
    spec.evaluate.min = 0.5
    assert changed(fingerprints(base(), "d", "iris"), fingerprints(spec, "d", "iris")) == [
        "evaluate",
        "package",
    ]


def test_preprocess_change_keeps_ingest() -> None:
    spec = base()
    spec.preprocess.numeric.scale = "minmax"
    assert changed(fingerprints(base(), "d", "iris"), fingerprints(spec, "d", "iris")) == [
        "preprocess",
        "tune",
        "evaluate",
        "package",
    ]


def test_serving_settings_do_not_retrain() -> None:
    spec = base()
    spec.serve.replicas = 5
    assert changed(fingerprints(base(), "d", "iris"), fingerprints(spec, "d", "iris")) == []


def test_step_arguments_wire_inputs() -> None:
    outs = {s: f"s3://b/{s}" for s in STEPS}
    args = StepInvocation("evaluate", outs["evaluate"], outs, "iris", "r1", "v1", "s3://b/spec.json").args()
    assert args == [
        "evaluate", "--out", "s3://b/evaluate", "--spec", "s3://b/spec.json",
        "--data", "s3://b/ingest", "--preprocess", "s3://b/preprocess", "--tune", "s3://b/tune",
    ]  # fmt: skip
    package = StepInvocation("package", outs["package"], outs, "iris", "r1", "v1").args()
    assert package[-6:] == ["--pipeline", "iris", "--run", "r1", "--version", "v1"]


def test_the_ingest_pod_and_the_operator_compute_the_same_ingest_key() -> None:
    # The operator hands ingest_spec_key to the pod, which completes it with the data's fingerprint.
    assert with_data(ingest_spec_key(base()), "d1") == fingerprints(base(), "d1", "iris")["ingest"]
    spec = base()
    spec.data.label = "kind"
    assert ingest_spec_key(spec) != ingest_spec_key(base())


def test_ingest_in_a_cluster_is_keyed_and_may_be_told_to_reuse_nothing() -> None:
    outs = {s: f"s3://b/{s}" for s in STEPS}
    keyed = StepInvocation("ingest", "s3://b/steps/ingest", outs, "iris", "r1", "v1", keyed="k1")
    assert keyed.args() == ["ingest", "--out", "s3://b/steps/ingest", "--keyed", "k1"]
    fresh = StepInvocation("ingest", "s3://b/steps/ingest", outs, "iris", "r1", "v1", keyed="k1", reuse=False)
    assert fresh.args()[-1] == "--no-cache"
