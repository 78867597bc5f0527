"""Package: a BentoML model holding estimator, preprocessing, label encoding and metadata, saved to
the local model store and exported to the artifact store so a serving pod can import it."""

from __future__ import annotations

import contextlib
import tempfile
from pathlib import Path
from typing import Any

import joblib

from mlpipeline.protocol import METRICS_FILE, MODEL_EXPORT, model_tag
from mlpipeline.steps import artifacts
from mlpipeline.steps.baseline import row_keys
from mlpipeline.steps.dataset import Dataset
from mlpipeline.steps.evaluate import MODEL
from mlpipeline.steps.report import REPORT

BUNDLE = "bundle.joblib"


def without_nulls(value: Any) -> Any:
    """BentoML metadata holds basic types only: drop unset (None) entries."""
    if isinstance(value, dict):
        return {k: without_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [without_nulls(v) for v in value if v is not None]
    return value


def run(
    pipeline: str,
    run_id: str,
    version: str,
    data_uri: str,
    preprocess_uri: str,
    evaluate_uri: str,
    out: str,
) -> dict[str, Any]:
    import bentoml

    from mlpipeline.serving.bundle import ModelBundle

    dataset = Dataset.load(data_uri, preprocess_uri)
    report = artifacts.read_json(artifacts.join(evaluate_uri, METRICS_FILE))
    metadata = without_nulls(
        {
            "pipeline": pipeline,
            "run": run_id,
            "metrics": report["metrics"],
            "params": report["params"],
            "gate": report["gate"],
            "profile": artifacts.read_json(artifacts.join(data_uri, "profile.json")),
        }
    )
    bundle = ModelBundle(
        estimator=artifacts.read_object(artifacts.join(evaluate_uri, MODEL)),
        preprocessor=dataset.preprocessor,
        schema=dataset.schema,
        metadata=metadata,
        trained_on=row_keys(dataset.frame(data_uri, "train"), dataset.schema),
    )
    tag = model_tag(pipeline, version)
    with contextlib.suppress(bentoml.exceptions.NotFound):
        bentoml.models.delete(tag)  # a re-run of the same inputs replaces its own version
    with bentoml.models.create(tag, labels={"pipeline": pipeline, "run": run_id}, metadata=metadata) as model:
        joblib.dump(bundle, model.path_of(BUNDLE))
    with tempfile.TemporaryDirectory() as tmp:
        exported = Path(tmp) / MODEL_EXPORT
        bentoml.models.export_model(str(model.tag), str(exported))
        artifacts.write_bytes(artifacts.join(out, MODEL_EXPORT), exported.read_bytes())
    info = {"tag": str(model.tag), "version": version, "artifact": artifacts.join(out, MODEL_EXPORT)}
    artifacts.write_json(artifacts.join(out, "model.json"), info)
    # evaluate's figures again: the operator reads them here when a run reused evaluate's output
    scored = {"metrics": report["metrics"], "report": artifacts.join(evaluate_uri, REPORT)}
    return {"summary": f"BentoML model {model.tag}", **info, **scored}
