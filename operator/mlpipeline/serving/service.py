"""The BentoML service of a packaged model: ``bentoml serve mlpipeline.serving.service:ModelService``.

Configured by environment: MLP_MODEL_TAG (the BentoML model tag) and, in a cluster pod,
MLP_MODEL_URI (the exported model in the artifact store, imported at start-up when the local
model store lacks it). Requests are batched adaptively; /metrics has BentoML's request metrics plus
predictions counted per class (regression: a histogram of predicted values).

POST /predict takes ``{"records": [{feature: value, ...}, ...]}`` and answers one prediction per
record. Each request's records are read on their own, before it joins a batch, as
serving/validation.py describes: null, NaN and missing fields are imputed, fields the model does not
declare are ignored, and a value that cannot be read as its feature's kind ("abc" for a numeric
feature, a list for a categorical one) refuses the whole request with HTTP 400, whose ``detail``
names each value, e.g. ``records[0].tenure_months: "abc" is not a number`` (at loc
``["records", 0, "tenure_months"]``); the requests batched beside it are answered as usual.
``records`` that is not a list of objects is a 400 as well. Refusals are counted in
``mlpipeline_rejected_requests_total{model_version, reason, field}``: reason ``unreadable_value``
with the declared feature of the request's first unreadable value, or ``malformed`` (field "") when
``records`` is not a list of objects, ``too_many_records`` past MLP_MAX_RECORDS, ``too_large`` for
a body over MLP_MAX_REQUEST_BYTES (HTTP 413, serving/limits.py). A body that is not JSON or lacks
``records`` is refused by BentoML alone and counted only in its request metrics. A request with the header
``x-mlpipeline-synthetic`` (mlpipeline's own load, protocol.SYNTHETIC_HEADER) is answered and
counted as any other but never captured (serving/capture.py).

The Open Inference Protocol (V2, REST: /v2/health/..., /v2/models/{name}[/versions/{version}]/infer)
is served beside these by serving/oip_app.py, its inference requests going through /predict.
"""

from __future__ import annotations

import contextlib
import os
from typing import Annotated, Any

import bentoml
from pydantic import ValidationError, ValidatorFunctionWrapHandler, WrapValidator
from pydantic_core import InitErrorDetails, PydanticCustomError

from mlpipeline.monitoring.drift import DriftReport
from mlpipeline.monitoring.drift_metrics import (
    CAPTURED,
    DRIFT_SAMPLES,
    FEATURE_DRIFT,
    PREDICTION,
    PREDICTION_DRIFT,
)
from mlpipeline.protocol import SYNTHETIC_HEADER
from mlpipeline.serving.bundle import load_bundle
from mlpipeline.serving.capture import Synthetic
from mlpipeline.serving.chaos import Chaos
from mlpipeline.serving.limits import MAX_REQUEST_BYTES, BodyLimit
from mlpipeline.serving.monitor import Monitor, MonitorSettings
from mlpipeline.serving.oip_app import app as open_inference_protocol
from mlpipeline.serving.validation import (
    TooManyRecords,
    UnreadableRecords,
    clean_records,
    within_request_limit,
)

MAX_BATCH_SIZE = int(os.environ.get("MLP_MAX_BATCH_SIZE", "128"))
MAX_LATENCY_MS = int(os.environ.get("MLP_MAX_LATENCY_MS", "1000"))
BATCHING = os.environ.get("MLP_BATCHING", "1") != "0"  # 0: one request per call (benchmark baseline)

predictions_total = bentoml.metrics.Counter(
    name="mlpipeline_predictions_total",
    documentation="Predictions made, by predicted class",
    labelnames=["model_version", "predicted_class"],
)
prediction_values = bentoml.metrics.Histogram(
    name="mlpipeline_prediction_value",
    documentation="Predicted values of a regression model",
    labelnames=["model_version"],
    buckets=(-1e6, -1e3, -100, -10, -1, 0, 1, 10, 100, 1e3, 1e6),
)
feature_drift = bentoml.metrics.Gauge(
    name=FEATURE_DRIFT,
    documentation="Jensen-Shannon distance of a feature's served distribution from its training one",
    labelnames=["pipeline", "model_version", "feature"],
)
prediction_drift = bentoml.metrics.Gauge(
    name=PREDICTION_DRIFT,
    documentation="Jensen-Shannon distance of the predictions from the training labels",
    labelnames=["pipeline", "model_version"],
)
drift_samples = bentoml.metrics.Gauge(
    name=DRIFT_SAMPLES,
    documentation="Served samples the drift was measured on (below the minimum: no drift exported)",
    labelnames=["pipeline", "model_version"],
)
captured_total = bentoml.metrics.Counter(
    name=CAPTURED,
    documentation="Sampled records written to the artifact store, dropped (buffer full, store down) "
    "or capped (the hourly byte cap reached)",
    labelnames=["pipeline", "model_version", "outcome"],
)
rejected_requests_total = bentoml.metrics.Counter(
    name="mlpipeline_rejected_requests_total",
    documentation="Prediction requests refused with HTTP 400, by reason and the field first unreadable",
    labelnames=["model_version", "reason", "field"],
)


def count(version: str, answers: list[dict[str, Any]]) -> None:
    for answer in answers:
        if "label" in answer:
            predictions_total.labels(model_version=version, predicted_class=str(answer["label"])).inc()
        else:
            prediction_values.labels(model_version=version).observe(answer["prediction"])


def read_records(value: Any, handler: ValidatorFunctionWrapHandler) -> list[dict[str, Any]]:
    """Validates one request's ``records`` (BentoML parses each request's input before batching)."""
    try:
        service = bentoml.get_current_service()
    except bentoml.exceptions.BentoMLException:
        return handler(value)  # type: ignore[no-any-return]  # outside a server: a client of this class
    try:
        records: list[dict[str, Any]] = handler(value)
    except ValidationError:
        rejected_requests_total.labels(model_version=service.version, reason="malformed", field="").inc()
        raise
    try:
        within_request_limit(records)
        cleaned = clean_records(service.bundle.features, records)
    except UnreadableRecords as error:
        reason = "too_many_records" if isinstance(error, TooManyRecords) else "unreadable_value"
        rejected_requests_total.labels(
            model_version=service.version, reason=reason, field=error.problems[0].field or ""
        ).inc()
        raise ValidationError.from_exception_data(
            "records",
            [
                InitErrorDetails(
                    type=PydanticCustomError("unreadable_value", "{problem}", {"problem": str(problem)}),
                    loc=(problem.index,) if problem.field is None else (problem.index, problem.field),
                    input=problem.value,
                )
                for problem in error.problems
            ],
        ) from None
    return [Synthetic(record) for record in cleaned] if synthetic() else cleaned


def synthetic() -> bool:
    """Whether the request being read is mlpipeline's own traffic (its SYNTHETIC_HEADER)."""
    try:
        return bool(bentoml.Context().request.headers.get(SYNTHETIC_HEADER))
    except LookupError:  # not in a request
        return False


Records = Annotated[list[dict[str, Any]], WrapValidator(read_records)]


@bentoml.asgi_app(open_inference_protocol, path="/")  # /v2/...: serving/oip_app.py
@bentoml.service(name="mlpipeline-model", traffic={"timeout": 30})
class ModelService:
    def __init__(self) -> None:
        self.version, self.bundle = load_bundle(os.environ["MLP_MODEL_TAG"], os.environ.get("MLP_MODEL_URI"))
        self.chaos = Chaos()
        settings = MonitorSettings.from_env()
        pipeline = settings.pipeline

        def count(outcome: str, n: int) -> None:
            captured_total.labels(pipeline=pipeline, model_version=self.version, outcome=outcome).inc(n)

        self.monitor = Monitor(
            settings,
            self.version,
            self.bundle.metadata.get("profile") or {"columns": {}},
            count,
            self.publish,
        ).start()

    def publish(self, report: DriftReport) -> None:
        labels = {"pipeline": self.monitor.settings.pipeline, "model_version": self.version}
        drift_samples.labels(**labels).set(report.samples)
        for feature in report.features:
            gauge, extra = (
                (prediction_drift, {})
                if feature.name == PREDICTION
                else (feature_drift, {"feature": feature.name})
            )
            if feature.value is not None:
                gauge.labels(**labels, **extra).set(feature.value)
            else:
                with contextlib.suppress(KeyError):
                    gauge.remove(*{**labels, **extra}.values())

    @bentoml.api(batchable=BATCHING, max_batch_size=MAX_BATCH_SIZE, max_latency_ms=MAX_LATENCY_MS)  # type: ignore[untyped-decorator]
    def predict(self, records: Records) -> list[dict[str, Any]]:
        """Predicts one answer per record: label and class probabilities, or a value."""
        self.chaos.before()
        answers = self.chaos.after(self.bundle.predict_rows(records), self.bundle.classes)
        count(self.version, answers)
        self.monitor.capture.offer(records, answers)
        return answers

    @bentoml.api  # type: ignore[untyped-decorator]
    def drift(self) -> dict[str, Any]:
        """The last drift measurement: per feature (and ``prediction``) the distance, or null when
        there were fewer samples than the minimum; the report's location in the artifact store."""
        return self.monitor.summary()

    @bentoml.api  # type: ignore[untyped-decorator]
    def metadata(self) -> dict[str, Any]:
        """The model's version, metrics, parameters and expected features."""
        return {
            "version": self.version,
            "features": self.bundle.features,
            "classes": self.bundle.classes,
            **{k: v for k, v in self.bundle.metadata.items() if k != "profile"},
        }


def refused_as_too_large() -> None:
    version = os.environ.get("MLP_MODEL_TAG", "").partition(":")[2]
    rejected_requests_total.labels(model_version=version, reason="too_large", field="").inc()


# bentoml.service made the class a Service, which mypy cannot see
ModelService.add_asgi_middleware(BodyLimit, limit=MAX_REQUEST_BYTES, refused=refused_as_too_large)  # type: ignore[attr-defined]
