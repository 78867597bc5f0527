"""Evaluate: refit the best configuration on the whole train split (a deep-learning family: take
the best trial's checkpoint), score it on the held-out split, and apply the gate. A failed gate
ends the pipeline: nothing is packaged or deployed. Only labels people gave or the original data
holds are scored: the labels a labeling round's model gave itself train, never score
(steps/split.py; ingest keeps them out of the held-out split). When a model serves, it is measured
beside the new one on the same held-out rows, and the shift between their predictions on the newest
partition's rows (steps/baseline.py): what the canary expects."""

from __future__ import annotations

from typing import Any

from mlpipeline.api.models import CLASSIFICATION_METRICS, MLPipelineSpec
from mlpipeline.protocol import METRICS_FILE
from mlpipeline.serving.bundle import ModelBundle
from mlpipeline.steps import artifacts
from mlpipeline.steps.artifacts import StepError
from mlpipeline.steps.baseline import against_serving
from mlpipeline.steps.dataset import Dataset
from mlpipeline.steps.estimators import build_estimator, visible_device
from mlpipeline.steps.images import image_shape
from mlpipeline.steps.metrics import score
from mlpipeline.steps.report import REPORT, compared, render
from mlpipeline.steps.split import NEWEST

MODEL = "model.joblib"


class GateFailed(StepError):
    """The model scored outside the gate of spec.evaluate."""


def gate_verdict(value: float, minimum: float | None, maximum: float | None, metric: str) -> str | None:
    """Why the value fails the gate, or None when it passes."""
    if minimum is not None and value < minimum:
        return f"{metric}={value:.4f} is below spec.evaluate.min={minimum}"
    if maximum is not None and value > maximum:
        return f"{metric}={value:.4f} is above spec.evaluate.max={maximum}"
    return None


def run(
    spec: MLPipelineSpec,
    data_uri: str,
    preprocess_uri: str,
    tune_uri: str,
    out: str,
    serving: str | None = None,
    serving_uri: str | None = None,
) -> dict[str, Any]:
    """``serving``: the BentoML tag of the model that serves, if one does (imported from
    ``serving_uri`` when the local model store lacks it)."""
    best = artifacts.read_json(artifacts.join(tune_uri, "best.json"))
    dataset = Dataset.load(data_uri, preprocess_uri)
    train_x, train_y, train_trusted = dataset.rows(data_uri, "train")
    test_x, test_y, test_trusted = dataset.rows(data_uri, "test")
    test_x, test_y = test_x[test_trusted], test_y[test_trusted]  # ingest holds none out; never score one
    task = str(spec.train.task)
    if best.get("checkpoint"):  # a deep-learning family: the tuned network itself
        estimator = artifacts.read_object(best["checkpoint"])
    else:
        context = {"input_shape": image_shape(dataset.preprocessor), "device": visible_device()}
        estimator = build_estimator(task, spec.train.model, best["config"], spec.data.seed, context)
        estimator.fit(train_x, train_y)
    names = list(CLASSIFICATION_METRICS) if task == "classification" else ["r2", "rmse", "mae"]
    if task == "classification" and not hasattr(estimator, "predict_proba"):
        names = ["accuracy", "f1_macro"]
    metrics = {name: score(name, estimator, test_x, test_y) for name in names}
    gate = spec.evaluate
    if gate.metric not in metrics:
        raise StepError(f"spec.evaluate.metric {gate.metric!r} cannot be computed for this model")
    failure = gate_verdict(metrics[gate.metric], gate.min, gate.max, gate.metric)
    baseline = None
    if serving and not failure:
        candidate = ModelBundle(estimator, dataset.preprocessor, dataset.schema)
        held_out = dataset.frame(data_uri, "test")[test_trusted]
        newest = dataset.schema.get(NEWEST)  # several partitions were read: the newest one's rows
        recent = dataset.frame(data_uri, newest) if newest else None
        baseline = against_serving(serving, serving_uri, candidate, held_out, gate.metric, recent)
    report = {
        "metrics": metrics,
        "gate": {"metric": gate.metric, "min": gate.min, "max": gate.max, "passed": failure is None},
        "params": best["config"],
        "testRows": len(test_y),
        "autoLabels": int((~train_trusted).sum()),  # rows labeled by the model itself: trained on only
        "baseline": baseline,
    }
    artifacts.write_json(artifacts.join(out, METRICS_FILE), report)
    page = artifacts.join(out, REPORT)
    classes = dataset.schema.get("classes") if task == "classification" else None
    trials = artifacts.read_json(artifacts.join(tune_uri, "trials.json"))
    html = render(trials, report, test_y, estimator.predict(test_x), classes)
    artifacts.write_bytes(page, html.encode())
    if failure:
        raise GateFailed(f"evaluation gate failed: {failure}; nothing is deployed (report: {page})")
    artifacts.write_object(artifacts.join(out, MODEL), estimator)
    summary = f"test {gate.metric}={metrics[gate.metric]:.4f} passed the gate" + compared(baseline)
    return {"summary": summary, "metrics": metrics, "report": page, "baseline": baseline}
