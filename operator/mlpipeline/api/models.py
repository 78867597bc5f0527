"""Pydantic models of the MLPipeline v1alpha1 custom resource: the single source of truth.

The CRD's OpenAPI schema in crds/ is generated from these models (``make crds``); the cross-field
rules are written twice on purpose — once as a pydantic validator (``mlpipeline validate`` and the
local runner) and once as CEL (``x-kubernetes-validations``, enforced by the API server) — and the
tests check that both reject the same manifests.
"""

from __future__ import annotations

import fnmatch
import re
from enum import StrEnum
from itertools import pairwise
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator
from pydantic.alias_generators import to_camel

from mlpipeline.protocol import COMPONENT_LABEL, OPERATOR_LABEL_PREFIX, is_pattern
from mlpipeline.schedule import Schedule

GROUP = "mlpipeline.dev"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
KIND = "MLPipeline"
PLURAL = "mlpipelines"

DURATION_PATTERN = r"^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$"
QUANTITY_PATTERN = r"^[0-9]+(\.[0-9]+)?(m|k|Ki|M|Mi|G|Gi|T|Ti)?$"
_DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(text: str) -> float:
    """Seconds in a Go-style duration such as ``30s``, ``1m30s`` or ``250ms``."""
    parts = re.findall(r"([0-9]+(?:\.[0-9]+)?)(ms|s|m|h)", text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise ValueError(f"invalid duration {text!r}: use e.g. 30s, 5m, 250ms")
    return sum(float(n) * _DURATION_UNITS[u] for n, u in parts)


def cel(rule: str, message: str, field_path: str | None = None) -> dict[str, Any]:
    """Marks a model with a CEL rule for the generated CRD; ``field_path`` (e.g. ``.min``): the field
    the API server names in its error, instead of the object the rule is declared on."""
    rule_doc = {"rule": rule, "message": message}
    if field_path is not None:
        rule_doc |= {"fieldPath": field_path, "reason": "FieldValueInvalid"}
    return rule_doc


class Model(BaseModel):
    """Base: camelCase on the wire, unknown fields are errors (typos must not pass silently)."""

    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="forbid", use_enum_values=True
    )


class Task(StrEnum):
    classification = "classification"
    regression = "regression"


class DataFormat(StrEnum):
    csv = "csv"
    parquet = "parquet"
    images = "images"


class ColumnType(StrEnum):
    numeric = "numeric"
    categorical = "categorical"
    image = "image"


class DataSpec(Model):
    """Where the training data lives and what it must look like to be accepted."""

    uri: str = Field(
        min_length=1,
        description="Data location: file://, s3://, http(s):// or a plain path (local runner); with "
        "glob characters, partitions to read together, e.g. s3://bucket/churn/month=*/*.csv.",
    )
    last_partitions: int | None = Field(
        default=None,
        ge=1,
        description="With a pattern uri: train on the newest N partitions by name (default: all).",
    )
    format: DataFormat | None = Field(
        default=None,
        description="csv or parquet (inferred from the URI's extension when unset), or images: uri is "
        "a folder with one subfolder of images per class (<uri>/<class>/<file>.png), read as a table "
        "of an image column and the label.",
    )
    label: str = Field(min_length=1, description="Name of the column to predict.")
    test_size: float = Field(
        default=0.2, gt=0, lt=1, description="Fraction of rows held out for the evaluation gate."
    )
    seed: int = Field(default=42, ge=0, description="Seed of the split and of every random choice.")
    min_rows: int = Field(default=20, ge=2, description="Fewer rows than this fail ingestion.")
    max_null_fraction: float = Field(
        default=0.5,
        ge=0,
        le=1,
        description="A feature column with a larger fraction of missing values fails ingestion.",
    )
    min_class_count: int = Field(
        default=2,
        ge=1,
        description="Classification: every class needs at least this many rows.",
    )
    columns: dict[str, ColumnType] = Field(
        default_factory=dict,
        description="Expected type per column; a column that does not parse as declared fails "
        "ingestion. Undeclared columns are typed by inference. image: each value is an image's path "
        "(relative to the data file), URI (s3://, file://) or the image itself in base64.",
    )

    @model_validator(mode="after")
    def _images_are_a_folder(self) -> DataSpec:
        if self.format == DataFormat.images.value and self.columns.get("image") not in (None, "image"):
            raise ValueError("format images reads an 'image' column: it cannot be declared otherwise")
        return self


class ImputeNumeric(StrEnum):
    mean = "mean"
    median = "median"
    most_frequent = "most_frequent"
    none = "none"


class Scale(StrEnum):
    standard = "standard"
    minmax = "minmax"
    none = "none"


class ImputeCategorical(StrEnum):
    most_frequent = "most_frequent"
    constant = "constant"
    none = "none"


class Encode(StrEnum):
    onehot = "onehot"
    ordinal = "ordinal"


class NumericPreprocess(Model):
    impute: ImputeNumeric = Field(default=ImputeNumeric.median, description="Imputation strategy.")
    scale: Scale = Field(default=Scale.standard, description="Scaling after imputation.")


class CategoricalPreprocess(Model):
    impute: ImputeCategorical = Field(
        default=ImputeCategorical.most_frequent, description="Imputation strategy."
    )
    encode: Encode = Field(
        default=Encode.onehot,
        description="onehot (unknown categories at serving time become all zeros) or ordinal "
        "(unknown categories become -1).",
    )


class ImagePreprocess(Model):
    size: list[int] = Field(
        default_factory=lambda: [28, 28],
        min_length=2,
        max_length=2,
        description="[height, width] every image is resized to.",
    )
    channels: Literal[1, 3] = Field(default=1, description="1 (grayscale) or 3 (RGB).")

    @field_validator("size")
    @classmethod
    def _positive(cls, value: list[int]) -> list[int]:
        if not all(1 <= v <= 1024 for v in value):
            raise ValueError("each side must be between 1 and 1024 pixels")
        return value


class PreprocessSpec(Model):
    """Transforms fitted on the train split only and shipped with the model."""

    numeric: NumericPreprocess = Field(default_factory=NumericPreprocess)
    categorical: CategoricalPreprocess = Field(default_factory=CategoricalPreprocess)
    image: ImagePreprocess = Field(
        default_factory=ImagePreprocess,
        description="Image columns: decoded, resized, normalised per channel with the train split's "
        "mean and standard deviation.",
    )


_SEARCH_KINDS = ("choice", "grid", "uniform", "loguniform", "randint")


_RANGES = ("uniform", "loguniform", "randint")


class SearchParam(Model):
    """One hyperparameter's domain: exactly one of the fields below."""

    # CEL cannot see choice and grid (their values are untyped), so the API server checks the
    # ranges only; the operator's own validation reports the rest in the status.
    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                cel(
                    " + ".join(f"(has(self.{k}) ? 1 : 0)" for k in _RANGES) + " <= 1",
                    "exactly one of choice, grid, uniform, loguniform, randint must be set",
                )
            ]
        }
    )

    choice: list[Any] | None = Field(
        default=None, min_length=1, max_length=100, description="Sample one of these values."
    )
    grid: list[Any] | None = Field(
        default=None, min_length=1, max_length=100, description="Try every one of these values."
    )
    uniform: list[float] | None = Field(
        default=None, min_length=2, max_length=2, description="[low, high], uniform."
    )
    loguniform: list[float] | None = Field(
        default=None, min_length=2, max_length=2, description="[low, high], log-uniform; low > 0."
    )
    randint: list[int] | None = Field(
        default=None, min_length=2, max_length=2, description="[low, high), integers."
    )

    @model_validator(mode="after")
    def _exactly_one(self) -> SearchParam:
        set_kinds = [k for k in _SEARCH_KINDS if getattr(self, k) is not None]
        if len(set_kinds) != 1:
            raise ValueError(
                "exactly one of choice, grid, uniform, loguniform, randint must be set"
                + (f" (got {', '.join(set_kinds)})" if set_kinds else "")
            )
        bounds = self.uniform or self.loguniform or self.randint
        if bounds is not None and not bounds[0] < bounds[1]:
            raise ValueError(f"low must be below high, got {bounds}")
        if self.loguniform is not None and self.loguniform[0] <= 0:
            raise ValueError("loguniform needs low > 0")
        return self

    @property
    def kind(self) -> str:
        return next(k for k in _SEARCH_KINDS if getattr(self, k) is not None)

    @property
    def discrete(self) -> bool:
        return self.choice is not None or self.grid is not None


class Algorithm(StrEnum):
    grid = "grid"
    random = "random"
    bayesian = "bayesian"


class Scheduler(StrEnum):
    none = "none"
    asha = "asha"


class Executor(StrEnum):
    auto = "auto"
    ray = "ray"
    inline = "inline"


class Mode(StrEnum):
    max = "max"
    min = "min"


BUILTIN_MODELS: dict[str, tuple[str, ...]] = {
    "classification": (
        "logistic_regression",
        "random_forest",
        "gradient_boosting",
        "xgboost",
        "torch_mlp",
        "torch_cnn",
    ),
    "regression": ("ridge", "random_forest", "gradient_boosting", "xgboost", "torch_mlp"),
}
"""The built-in model names per task (spec.train.model); steps/estimators.py builds each (a unit
test keeps the two in agreement)."""
CLASSIFICATION_METRICS = {"accuracy": "max", "f1_macro": "max", "roc_auc": "max", "log_loss": "min"}
REGRESSION_METRICS = {"r2": "max", "rmse": "min", "mae": "min"}
METRICS = {**CLASSIFICATION_METRICS, **REGRESSION_METRICS}
METRIC_RANGES: dict[str, tuple[float | None, float | None]] = {
    "accuracy": (0.0, 1.0),
    "f1_macro": (0.0, 1.0),
    "roc_auc": (0.0, 1.0),
    "log_loss": (0.0, None),
    "r2": (None, 1.0),
    "rmse": (0.0, None),
    "mae": (0.0, None),
}
"""The values each metric can take: a gate outside them is one no model can pass."""


INLINE_SERIAL = "executor inline runs one trial at a time: maxConcurrent needs executor ray or auto"
INLINE_LOCAL = "tune.executor inline runs in the tune pod: train.distributed needs executor ray or auto"


class TuneSpec(Model):
    """Hyperparameter search with Ray Tune."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                cel(
                    "self.algorithm != 'grid' || self.searchSpace.all(k, "
                    + " && ".join(f"!has(self.searchSpace[k].{r})" for r in _RANGES)
                    + ")",
                    "grid search needs discrete values (choice or grid) for every parameter",
                ),
                cel(
                    "!has(self.maxConcurrent) || self.maxConcurrent <= self.trials"
                    " || (has(self.algorithm) && self.algorithm == 'grid')",
                    "maxConcurrent must not exceed trials",
                ),
                cel(
                    "!has(self.maxConcurrent) || !has(self.executor) || self.executor != 'inline'",
                    INLINE_SERIAL,
                ),
            ]
        }
    )

    algorithm: Algorithm = Field(
        default=Algorithm.random,
        description="grid (every combination), random, or bayesian (Optuna's TPE).",
    )
    scheduler: Scheduler = Field(
        default=Scheduler.asha,
        description="asha stops unpromising trials early (after each cross-validation fold); "
        "none runs every trial to the end.",
    )
    trials: int = Field(
        default=8,
        ge=1,
        le=1000,
        description="Number of trials (random, bayesian); for grid, repetitions of the grid.",
    )
    max_concurrent: int | None = Field(
        default=None, ge=1, le=256, description="Trials running at once on Ray; unset: as many as fit."
    )
    executor: Executor = Field(
        default=Executor.auto,
        description="Where trials run. ray: each trial in a Ray actor, as many at once as the "
        "resources allow, across nodes when train.distributed is set. inline: one after another in "
        "the tune step's own process, with the same search algorithms and ASHA from Ray Tune but no "
        "Ray processes: for small searches, where Ray's start-up (about 10 s) costs more than "
        "parallel trials save. auto: inline for families trained by folds (not torch_*) on at most "
        "10,000 train rows without GPUs or train.distributed; else ray.",
    )
    metric: str = Field(
        default="accuracy",
        description="Metric to optimise: accuracy, f1_macro, roc_auc, log_loss (classification); "
        "r2, rmse, mae (regression).",
    )
    mode: Mode | None = Field(default=None, description="max or min; unset: the metric's natural one.")
    folds: int = Field(default=3, ge=2, le=10, description="Cross-validation folds per trial.")
    search_space: dict[str, SearchParam] = Field(
        min_length=1,
        max_length=32,
        description="Hyperparameters of the model and their domains.",
    )

    @field_validator("metric")
    @classmethod
    def _known_metric(cls, value: str) -> str:
        if value not in METRICS:
            raise ValueError(f"unknown metric {value!r}; known: {', '.join(METRICS)}")
        return value

    @model_validator(mode="after")
    def _cross_fields(self) -> TuneSpec:
        if self.algorithm == Algorithm.grid.value:
            ranged = [k for k, p in self.search_space.items() if not p.discrete]
            if ranged:
                raise ValueError(
                    "grid search needs discrete values (choice or grid) for every parameter; "
                    f"not discrete: {', '.join(ranged)}"
                )
        grid = self.algorithm == Algorithm.grid.value  # trials repeat the grid: its points run at once
        if self.max_concurrent is not None and self.max_concurrent > self.trials and not grid:
            raise ValueError("maxConcurrent must not exceed trials")
        if self.max_concurrent is not None and self.executor == Executor.inline.value:
            raise ValueError(INLINE_SERIAL)
        return self

    @property
    def resolved_mode(self) -> str:
        return str(self.mode or METRICS[self.metric])


class Toleration(Model):
    key: str | None = None
    operator: Literal["Exists", "Equal"] | None = None
    value: str | None = None
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None = None


class Resources(Model):
    """Resources of one training trial and of the tune Job's pod."""

    cpu: str = Field(default="1", pattern=QUANTITY_PATTERN, description="CPU per trial, e.g. 1 or 500m.")
    memory: str = Field(default="1Gi", pattern=QUANTITY_PATTERN, description="Memory of the pod.")
    gpu: float = Field(
        default=0,
        ge=0,
        le=64,
        description="GPUs per trial, a fraction (0.25) to share one GPU between trials; > 0 asks "
        "nvidia.com/gpu for the trials running at once (rounded up) and places the tune Job on GPU "
        "nodes. The deep-learning families and xgboost train on the GPU when they have one.",
    )

    @field_validator("gpu")
    @classmethod
    def _whole_above_one(cls, value: float) -> float:
        if value > 1 and value != int(value):
            raise ValueError("a trial takes a fraction of one GPU or whole GPUs, e.g. 0.5 or 2, not 1.5")
        return value

    @field_validator("cpu", "memory", mode="before")
    @classmethod
    def _number_to_quantity(cls, value: Any) -> Any:
        return str(value) if isinstance(value, int | float) and not isinstance(value, bool) else value

    @property
    def cores(self) -> float:
        """CPU per trial in cores (``500m`` is 0.5); ValueError for a quantity that is not a CPU count."""
        match = re.fullmatch(r"([0-9.]+)(m?)", self.cpu)
        if not match:
            raise ValueError(f"spec.train.resources.cpu: cannot use {self.cpu!r} as a CPU count")
        number = float(match.group(1))
        return number / 1000 if match.group(2) else number


class DistributedWhen(StrEnum):
    if_available = "IfAvailable"
    always = "Always"


class DistributedSpec(Model):
    """Tuning across nodes: the tune step runs as a KubeRay RayJob on a RayCluster of its own (a head
    and a group of workers sized from train.resources), and the trials spread over the workers."""

    workers: int = Field(default=2, ge=1, le=256, description="Ray worker pods.")
    trials_per_worker: int = Field(
        default=1,
        ge=1,
        le=64,
        description="Trials each worker runs at once: its pod gets resources for them.",
    )
    when: DistributedWhen = Field(
        default=DistributedWhen.if_available,
        description="IfAvailable: a RayJob when KubeRay's RayJob API (ray.io/v1) is installed, else "
        "one tune pod; Always: refuse the pipeline without it.",
    )
    ttl: str = Field(
        default="5m",
        pattern=DURATION_PATTERN,
        description="How long KubeRay keeps the RayCluster once the job finished (to read its logs) "
        "before deleting it; the RayJob itself goes with its pipeline.",
    )


class TrainSpec(Model):
    """What to train and where."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                cel(
                    "self.task != 'regression' || !(self.model in ['logistic_regression'])",
                    "logistic_regression is a classification model",
                ),
                cel(
                    "!has(self.distributed) || !has(self.tune.executor) || self.tune.executor != 'inline'",
                    INLINE_LOCAL,
                ),
            ]
        }
    )

    task: Task = Field(default=Task.classification, description="classification or regression.")
    model: str = Field(
        default="random_forest",
        pattern=r"^([a-z_]+|[A-Za-z_][A-Za-z0-9_.]*:[A-Za-z_][A-Za-z0-9_]*)$",
        description="Built-in: logistic_regression, random_forest, gradient_boosting, xgboost, "
        "torch_mlp, torch_cnn (classification); ridge, random_forest, gradient_boosting, xgboost, "
        "torch_mlp (regression). torch_* and xgboost need the deep-learning extra (the default image "
        "lacks it: train.image names one that has it); torch_* train epoch by epoch, torch_cnn reads one "
        "image column. Or bring your own: "
        "'package.module:function' returning a scikit-learn compatible estimator from the "
        "hyperparameters as keyword arguments.",
    )
    image: str | None = Field(
        default=None, description="Image of the step Jobs (bring-your-own code); default: the operator's."
    )
    tune: TuneSpec
    resources: Resources = Field(default_factory=Resources)
    node_selector: dict[str, str] = Field(
        default_factory=dict, description="Node labels the tune Job must run on."
    )
    tolerations: list[Toleration] = Field(
        default_factory=list, description="Tolerations of the tune Job (GPU taints are added)."
    )
    priority_class_name: str | None = Field(default=None, description="PriorityClass of the tune Job.")
    queue: str | None = Field(default=None, description="Kueue LocalQueue the Jobs are submitted to.")
    distributed: DistributedSpec | None = Field(
        default=None,
        description="Tune across nodes on KubeRay (a RayJob) instead of in one pod; the local runner "
        "ignores it.",
    )

    @model_validator(mode="after")
    def _model_fits_task(self) -> TrainSpec:
        if self.distributed is not None and self.tune.executor == Executor.inline.value:
            raise ValueError(INLINE_LOCAL)
        if ":" in self.model:
            return self
        known = BUILTIN_MODELS[self.task]
        if self.model not in known:
            raise ValueError(
                f"unknown model {self.model!r} for {self.task}; built-in: {', '.join(known)}, "
                "or 'module:function'"
            )
        metrics = CLASSIFICATION_METRICS if self.task == Task.classification.value else REGRESSION_METRICS
        if self.tune.metric not in metrics:
            raise ValueError(
                f"metric {self.tune.metric!r} does not apply to {self.task}; use one of {', '.join(metrics)}"
            )
        return self


def _at_most_one() -> list[str]:
    return [m for m, (_, high) in METRIC_RANGES.items() if high == 1.0]


def _at_least_zero() -> list[str]:
    return [m for m, (low, _) in METRIC_RANGES.items() if low == 0.0]


def _unreachable(metric: str, bound: str, value: float) -> str:
    kept = "at most 1" if bound == "min" else "at least 0"
    return f"no model can pass this gate: {metric} is {kept} and {bound} is {value:g}"


def _cel_metric_in(metrics: list[str]) -> str:
    listed = ", ".join(f"'{m}'" for m in metrics)
    return f"(has(self.metric) ? self.metric : 'accuracy') in [{listed}]"


class EvaluateSpec(Model):
    """The gate a trained model must pass on the held-out split before anything is deployed."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                cel("has(self.min) || has(self.max)", "set min, max or both"),
                cel(
                    "!has(self.min) || !has(self.max) || self.min <= self.max",
                    "min must not exceed max",
                ),
                cel(
                    f"!has(self.min) || self.min <= 1.0 || !({_cel_metric_in(_at_most_one())})",
                    f"no model can pass this gate: {', '.join(_at_most_one())} are at most 1, "
                    "so min must not exceed 1",
                    ".min",
                ),
                cel(
                    f"!has(self.max) || self.max >= 0.0 || !({_cel_metric_in(_at_least_zero())})",
                    f"no model can pass this gate: {', '.join(_at_least_zero())} are at least 0, "
                    "so max must not be below 0",
                    ".max",
                ),
            ]
        }
    )

    metric: str = Field(
        default="accuracy",
        description="Metric of the gate (same names as tune), scored on held-out rows labeled by people "
        "or present in the original data: labels a labeling round's model gave train, never score.",
    )
    min: float | None = Field(
        default=None,
        description="The model fails below this value (at most 1 for accuracy, f1_macro, roc_auc, r2).",
    )
    max: float | None = Field(
        default=None,
        description="The model fails above this value (at least 0 for accuracy, f1_macro, roc_auc, "
        "log_loss, rmse, mae).",
    )

    @field_validator("metric")
    @classmethod
    def _known_metric(cls, value: str) -> str:
        return TuneSpec._known_metric(value)

    @field_validator("min", "max")
    @classmethod
    def _reachable(cls, value: float | None, info: ValidationInfo) -> float | None:
        """A bound outside the values the metric can take: no model could ever pass the gate."""
        metric = info.data.get("metric")
        if value is None or metric not in METRIC_RANGES:
            return value
        low, high = METRIC_RANGES[metric]
        if info.field_name == "min" and high is not None and value > high:
            raise ValueError(_unreachable(metric, "min", value))
        if info.field_name == "max" and low is not None and value < low:
            raise ValueError(_unreachable(metric, "max", value))
        return value

    @model_validator(mode="after")
    def _bounds(self) -> EvaluateSpec:
        if self.min is None and self.max is None:
            raise ValueError("set min, max or both")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError("min must not exceed max")
        return self


class NoDataPolicy(StrEnum):
    hold = "hold"
    fail = "fail"
    pass_ = "pass"


PROMETHEUS_URL_PATTERN = r"^https?://[^/?#@ ]+(/[^?#@ ]*)?$"


class AnalysisSpec(Model):
    """Thresholds a canary is held to, each checked against Prometheus at every interval."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                cel(
                    f"!has(self.prometheusUrl) || self.prometheusUrl.matches('{PROMETHEUS_URL_PATTERN}')",
                    "prometheusUrl must be an http:// or https:// URL without user, query string or fragment",
                    ".prometheusUrl",
                )
            ]
        }
    )

    max_error_rate: float = Field(default=0.01, ge=0, le=1, description="Share of 5xx answers.")
    max_latency_p95: str = Field(
        default="250ms", pattern=DURATION_PATTERN, description="95th percentile request latency."
    )
    max_prediction_shift: float = Field(
        default=0.2,
        ge=0,
        description="How far the prediction shift (PSI of the canary's predicted classes against the "
        "stable's) may depart from the shift evaluate measured between the two models on held-out rows "
        "(status.model.baseline.predictionShift; 0 without a baseline), beyond what chance explains at "
        "the window's request counts.",
    )
    max_score_drop: float = Field(
        default=0.02,
        ge=0,
        description="How much worse than the stable version, in units of spec.evaluate.metric, the "
        "canary may have scored at evaluate on the held-out rows neither model trained on "
        "(status.model.baseline), beyond the difference chance explains on those rows.",
    )
    failure_threshold: int = Field(
        default=2, ge=1, le=100, description="Consecutive failed analyses that roll back."
    )
    interval: str = Field(
        default="5s",
        pattern=DURATION_PATTERN,
        description="How often the checks run, independent of the traffic step interval, so a bad "
        "canary is rolled back within failureThreshold x interval.",
    )
    window: str = Field(
        default="30s", pattern=DURATION_PATTERN, description="Range of the PromQL rate() queries."
    )
    min_requests: int = Field(
        default=10,
        ge=1,
        description="Fewer canary requests than this in the window count as no data, not as a pass.",
    )
    no_data: NoDataPolicy = Field(
        default=NoDataPolicy.hold,
        description="What an interval without traffic means: hold (wait, up to noDataDeadline), "
        "fail, or pass.",
    )
    no_data_deadline: str = Field(
        default="5m", pattern=DURATION_PATTERN, description="How long hold may wait for data."
    )
    prometheus_url: str | None = Field(
        default=None,
        max_length=2048,
        description="Prometheus to query (http or https, no user, query string or fragment); default: "
        "the operator's. In a cluster the operator queries it only when the platform allows it "
        "(the chart's prometheus.allowedUrls).",
    )

    @field_validator("prometheus_url")
    @classmethod
    def _plain_url(cls, value: str | None) -> str | None:
        """A URL the operator may compare with its allow-list: nothing that could change where a
        request goes (a user@ part) or swallow the API path (a query string, a fragment)."""
        if value is not None and not re.fullmatch(PROMETHEUS_URL_PATTERN, value):
            raise ValueError("must be an http:// or https:// URL without user, query string or fragment")
        return value


class TrafficProvider(StrEnum):
    auto = "auto"
    gateway_api = "gatewayAPI"
    replicas = "replicas"


class CanarySpec(Model):
    """How a new model version replaces the serving one."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                cel(
                    "self.steps.isSorted() && self.steps.all(x, self.steps.filter(y, y == x).size() == 1)",
                    "canary steps must be strictly increasing",
                )
            ]
        }
    )

    steps: list[int] = Field(
        default_factory=lambda: [10, 25, 50],
        min_length=1,
        max_length=20,
        description="Percent of traffic sent to the canary at each step, strictly increasing, each 1..100.",
        json_schema_extra={"items": {"type": "integer", "minimum": 1, "maximum": 100}},
    )
    interval: str = Field(default="30s", pattern=DURATION_PATTERN, description="Time per step.")
    traffic: TrafficProvider = Field(
        default=TrafficProvider.auto,
        description="gatewayAPI (HTTPRoute weights), replicas (pod ratio), or auto.",
    )
    analysis: AnalysisSpec = Field(default_factory=AnalysisSpec)

    @field_validator("steps")
    @classmethod
    def _increasing(cls, steps: list[int]) -> list[int]:
        for value in steps:
            if not 1 <= value <= 100:
                raise ValueError(f"each canary step must be within 1..100, got {value}")
        if any(b <= a for a, b in pairwise(steps)):
            raise ValueError(f"canary steps must be strictly increasing, got {steps}")
        return steps


class GatewayRef(Model):
    name: str = Field(min_length=1, description="Gateway the HTTPRoute attaches to.")
    namespace: str | None = Field(default=None, description="Its namespace; default: the pipeline's.")


class ServeSpec(Model):
    """Serving of the model that passed its gate."""

    enabled: bool = Field(default=True, description="false: the pipeline ends after packaging.")
    replicas: int = Field(default=1, ge=0, le=100, description="Replicas of the stable version.")
    port: int = Field(default=3000, ge=1, le=65535, description="HTTP port of the model server.")
    canary: CanarySpec = Field(default_factory=CanarySpec)
    gateway_ref: GatewayRef | None = Field(
        default=None, description="Gateway API Gateway of the HTTPRoute (traffic: gatewayAPI)."
    )
    cpu: str = Field(default="500m", pattern=QUANTITY_PATTERN, description="CPU request per replica.")
    memory: str = Field(default="1Gi", pattern=QUANTITY_PATTERN, description="Memory per replica.")


class CaptureSpec(Model):
    """What the model servers keep of what they serve."""

    sample_rate: float = Field(
        default=0.1,
        ge=0,
        le=1,
        description="Share of served records captured (features, prediction, version).",
    )
    buffer: int = Field(
        default=10_000,
        ge=100,
        le=1_000_000,
        description="Captured records a server holds awaiting a write; beyond it samples are dropped "
        '(counted in mlpipeline_capture_records_total{outcome="dropped"}), never requests.',
    )
    max_bytes_per_hour: int = Field(
        default=32 * 1024 * 1024,
        ge=64 * 1024,
        le=16 * 1024**3,
        description="Bytes a server writes into one hour partition at most; beyond them samples are "
        'dropped (counted in mlpipeline_capture_records_total{outcome="capped"}).',
    )
    retention: str = Field(
        default="720h",
        pattern=DURATION_PATTERN,
        description="Hour partitions of the capture (every version's) older than this are deleted by "
        "the model servers, once an hour.",
    )


class DriftSpec(Model):
    """Drift of the served data from the training data, measured by each model server."""

    window: str = Field(default="1h", pattern=DURATION_PATTERN, description="Served samples of this long.")
    min_samples: int = Field(
        default=100, ge=10, description="Fewer samples in the window: not enough data, never drift."
    )
    threshold: float = Field(
        default=0.2,
        gt=0,
        le=1,
        description="Jensen-Shannon distance (0 to 1) above which a feature or the predictions drifted.",
    )
    interval: str = Field(
        default="30s", pattern=DURATION_PATTERN, description="How often drift is measured and read back."
    )


class MonitoringSpec(Model):
    """Capture and drift: the model servers sample what they serve into the artifact store
    (<artifacts>/<namespace>/<pipeline>/capture/version=<v>/hour=<h>/) and export drift to Prometheus;
    the operator reads it into status.monitoring."""

    capture: CaptureSpec = Field(default_factory=CaptureSpec)
    drift: DriftSpec = Field(default_factory=DriftSpec)

    def server_env(self, pipeline: str, capture_uri: str | None) -> dict[str, str]:
        """The model server's environment for it (read by serving/monitor.py)."""
        env = {
            "MLP_PIPELINE": pipeline,
            "MLP_CAPTURE_RATE": str(self.capture.sample_rate),
            "MLP_CAPTURE_BUFFER": str(self.capture.buffer),
            "MLP_CAPTURE_MAX_BYTES_PER_HOUR": str(self.capture.max_bytes_per_hour),
            "MLP_CAPTURE_RETENTION": str(parse_duration(self.capture.retention)),
            "MLP_DRIFT_WINDOW": str(parse_duration(self.drift.window)),
            "MLP_DRIFT_MIN_SAMPLES": str(self.drift.min_samples),
            "MLP_DRIFT_THRESHOLD": str(self.drift.threshold),
            "MLP_MONITOR_INTERVAL": str(parse_duration(self.drift.interval)),
        }
        if capture_uri:
            env["MLP_CAPTURE_URI"] = capture_uri
        return env


class DriftTrigger(Model):
    """Retrain when the stable version's drift stays above spec.monitoring.drift.threshold."""

    sustained: str = Field(
        default="10m", pattern=DURATION_PATTERN, description="How long drift must stay above the threshold."
    )
    features: list[str] = Field(
        default_factory=list,
        description="Features (or 'prediction') that count; empty: any feature or the predictions.",
    )


class NewDataTrigger(Model):
    """Retrain when new partitions land under spec.data.uri (a pattern), listed by the operator
    with its own credentials."""

    interval: str = Field(default="5m", pattern=DURATION_PATTERN, description="How often the data is listed.")
    settle: str = Field(
        default="1m",
        pattern=DURATION_PATTERN,
        description="A partition counts once it has not been modified for this long (uploads finish).",
    )
    min_new_rows: int = Field(
        default=1, ge=1, description="New settled partitions fire a run once they hold this many rows."
    )


class ConcurrencyPolicy(StrEnum):
    Forbid = "Forbid"
    Replace = "Replace"  # a member named replace would shadow str.replace


class RetrainSpec(Model):
    """When a new run starts by itself. A scheduled time that passes while the operator is down
    fires once when it is back (the latest one only: no catch-up storm); what fired is recorded in
    status.retrain, so a restart never fires it twice."""

    schedule: str | None = Field(
        default=None,
        pattern=r"^(@(hourly|daily|weekly|monthly)|(\S+\s+){4}\S+)$",
        description="Cron schedule (minute hour day-of-month month day-of-week), e.g. '0 3 * * *', "
        "or @hourly, @daily, @weekly, @monthly.",
    )
    time_zone: str = Field(
        default="UTC", min_length=1, description="IANA time zone of the schedule, e.g. Europe/Berlin."
    )
    cooldown: str = Field(
        default="0s",
        pattern=DURATION_PATTERN,
        description="A trigger within this time of the last triggered run's start is skipped (recorded).",
    )
    on_new_data: NewDataTrigger | None = Field(
        default=None, description="Retrain on new partitions of spec.data.uri (a pattern)."
    )
    on_drift: DriftTrigger | None = Field(
        default=None, description="Retrain on drift (needs Prometheus: the canary analysis's)."
    )
    concurrency_policy: ConcurrencyPolicy = Field(
        default=ConcurrencyPolicy.Forbid,
        description="A trigger while a run or canary is in progress: Forbid skips it (recorded), "
        "Replace starts the new run, which supersedes the one in progress.",
    )

    @model_validator(mode="after")
    def _schedule_parses(self) -> RetrainSpec:
        if self.schedule:
            Schedule.parse(self.schedule, self.time_zone)
        return self


class SecretRef(Model):
    name: str = Field(min_length=1)


class Uncertainty(StrEnum):
    margin = "margin"  # the gap between the two most probable classes: smallest first
    entropy = "entropy"  # of the predicted distribution: largest first


class PeopleSelection(StrEnum):
    diverse = "diverse"  # one record per cluster of the round's records, clusters drawn to the uncertain
    uncertain = "uncertain"  # the most uncertain records


class DeadlinePolicy(StrEnum):
    merge = "merge"  # merge what people labeled by then with the automatic labels
    discard = "discard"  # write no partition: the round failed


class AuditSpec(Model):
    """A random sample of the automatic labels that people label too, shown without the model's
    guess so that the measured disagreement is not anchored on it."""

    fraction: float = Field(default=0.05, ge=0, le=1, description="Share of the automatic labels audited.")
    max_disagreement: float = Field(
        default=0.02,
        ge=0,
        le=1,
        description="Above this share of audited labels that people changed, the round's automatic "
        "labels are left out of the partition (people's labels are kept). Labels from a model trained "
        "on few rows are wrong more often than its probabilities say, and a few percent of wrong "
        "automatic labels cost more accuracy than they add: with an audit of fewer than 50 records, "
        "the default keeps them only when people changed none.",
    )


class SecretKeyRef(Model):
    name: str = Field(min_length=1, description="Secret in the pipeline's namespace.")
    key: str = Field(default="token", min_length=1, description="Key of the value in the Secret.")


class LabelStudioSpec(Model):
    """A Label Studio server people label in. Without it, the round writes Label Studio's JSON
    import file and reads its JSON export back from the artifact store."""

    url: str = Field(pattern=r"^https?://", description="Base URL, e.g. http://label-studio.tools:8080.")
    project: str | None = Field(
        default=None,
        description="Title of the project, created when missing; default: mlpipeline <pipeline>.",
    )
    token_secret_ref: SecretKeyRef | None = Field(
        default=None,
        description="Secret holding an access token (a personal access token, or a legacy token), "
        "given to the step as LABEL_STUDIO_API_KEY; never logged. Locally: $LABEL_STUDIO_API_KEY.",
    )


class LabelingSpec(Model):
    """Automated labeling rounds: the serving model labels the unlabeled records it is sure of,
    people label the ones it is least sure of (and an audit sample), and the merged result lands
    as a new partition of spec.data.uri, which spec.retrain.onNewData trains on."""

    source: str = Field(
        min_length=1,
        description="Unlabeled records: a file or pattern of CSV, Parquet or JSON Lines files (the "
        "serving capture's lines are read by their features), e.g. s3://bucket/sensors/unlabeled/*.csv.",
    )
    into: str = Field(
        min_length=1,
        description="Directory each round writes its labeled partition to "
        "(<into>/labels-<time>-<round>.csv); spec.data.uri must match it.",
    )
    min_confidence: float = Field(
        default=0.95,
        ge=0.5,
        le=1,
        description="Records the model predicts with at least this probability are labeled automatically.",
    )
    max_class_share: float = Field(
        default=0.8,
        gt=0,
        le=1,
        description="No class gets more than this share of a round's automatic labels (the most "
        "confident are kept), so a confident majority class cannot swamp the data.",
    )
    budget: int = Field(default=50, ge=0, description="Most uncertain records sent to people per round.")
    uncertainty: Uncertainty = Field(default=Uncertainty.margin, description="margin or entropy.")
    selection: PeopleSelection = Field(
        default=PeopleSelection.diverse,
        description="Which records people label. diverse: the round's records (in the model's feature "
        "space) are clustered into `budget` groups by k-means weighted by their uncertainty, and the "
        "record nearest each group's centre goes to people: mostly uncertain records, spread over the "
        "data, never a clump of near-duplicates of one confusion. uncertain: the `budget` most "
        "uncertain records.",
    )
    audit: AuditSpec = Field(default_factory=AuditSpec)
    use_auto_labels: bool = Field(
        default=True, description="false: only people's labels go into the partition."
    )
    deadline: str = Field(
        default="24h", pattern=DURATION_PATTERN, description="How long a round waits for people."
    )
    on_deadline: DeadlinePolicy = Field(
        default=DeadlinePolicy.merge,
        description="merge: what people labeled by then plus the automatic labels; discard: nothing.",
    )
    interval: str = Field(
        default="5m", pattern=DURATION_PATTERN, description="How often the source is listed for new files."
    )
    settle: str = Field(
        default="1m",
        pattern=DURATION_PATTERN,
        description="A source file counts once it has not been modified for this long.",
    )
    label_studio: LabelStudioSpec | None = Field(default=None, description="Where people label.")

    def partition_name(self, started: str, round_id: str) -> str:
        """The file a round writes: named by its start, so partitions sort in the order they land."""
        moment = started.replace("-", "").replace(":", "")
        return f"{self.into.rstrip('/')}/labels-{moment}-{round_id}.csv"


class ArtifactsSpec(Model):
    """Where step outputs (splits, transforms, trials, models) are stored."""

    uri: str | None = Field(
        default=None,
        description="s3://bucket/prefix or file:///mounted/path; default: the operator's setting.",
    )
    secret_ref: SecretRef | None = Field(
        default=None,
        description="Secret whose keys become the environment of the step and model containers: "
        "AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and, for an S3-compatible server, AWS_ENDPOINT_URL.",
    )
    pvc: str | None = Field(default=None, description="PersistentVolumeClaim mounted at /artifacts.")


class StepPolicy(Model):
    """Retries and deadlines of every step Job."""

    retries: int = Field(default=1, ge=0, le=10, description="Job backoffLimit.")
    timeout: str = Field(default="1h", pattern=DURATION_PATTERN, description="activeDeadlineSeconds.")
    pending_timeout: str = Field(
        default="10m",
        pattern=DURATION_PATTERN,
        description="A step pod that cannot start (unschedulable, image pull) fails after this.",
    )
    history_limit: int = Field(
        default=3,
        ge=0,
        le=100,
        description="Earlier runs whose step Jobs (and their pods, with their logs) are kept, as a "
        "CronJob's history limits; older runs' are deleted. The current run's are always kept.",
    )
    cache: bool = Field(
        default=True,
        description="Reuse a step's output from an earlier run when the step's key (the spec sections "
        "it reads, its inputs' keys, the code version and, for ingest, the data's fingerprint) is "
        "unchanged; false: every run runs every step.",
    )
    pod_labels: dict[str, str] = Field(
        default_factory=dict,
        description="Labels added to every step pod (e.g. cost allocation); not the operator's own "
        "(mlpipeline.dev/..., app.kubernetes.io/component), which select pods and Services.",
        json_schema_extra={
            "x-kubernetes-validations": [
                cel(
                    f"self.all(k, !k.startsWith('{OPERATOR_LABEL_PREFIX}') && k != '{COMPONENT_LABEL}')",
                    f"labels under {OPERATOR_LABEL_PREFIX} and {COMPONENT_LABEL} are the operator's own",
                )
            ]
        },
    )
    pod_annotations: dict[str, str] = Field(
        default_factory=dict, description="Annotations added to every step pod (e.g. sidecar injection)."
    )

    @field_validator("pod_labels")
    @classmethod
    def _not_the_operator_s(cls, pod_labels: dict[str, str]) -> dict[str, str]:
        ours = sorted(k for k in pod_labels if k.startswith(OPERATOR_LABEL_PREFIX) or k == COMPONENT_LABEL)
        if ours:
            raise ValueError(
                f"labels under {OPERATOR_LABEL_PREFIX} and {COMPONENT_LABEL} are the operator's own: {ours}"
            )
        return pod_labels


class MLPipelineSpec(Model):
    """The whole machine-learning cycle of one model."""

    data: DataSpec
    preprocess: PreprocessSpec = Field(default_factory=PreprocessSpec)
    train: TrainSpec
    evaluate: EvaluateSpec
    serve: ServeSpec = Field(default_factory=ServeSpec)
    monitoring: MonitoringSpec = Field(default_factory=MonitoringSpec)
    retrain: RetrainSpec = Field(default_factory=RetrainSpec)
    labeling: LabelingSpec | None = Field(
        default=None, description="Automated labeling rounds (classification only)."
    )
    artifacts: ArtifactsSpec = Field(default_factory=ArtifactsSpec)
    steps: StepPolicy = Field(default_factory=StepPolicy)

    @model_validator(mode="after")
    def _gate_metric_fits_task(self) -> MLPipelineSpec:
        metrics = (
            CLASSIFICATION_METRICS if self.train.task == Task.classification.value else REGRESSION_METRICS
        )
        if self.evaluate.metric not in metrics:
            raise ValueError(f"evaluate.metric {self.evaluate.metric!r} does not apply to {self.train.task}")
        return self

    @model_validator(mode="after")
    def _new_data_needs_partitions(self) -> MLPipelineSpec:
        if self.retrain.on_new_data and not is_pattern(self.data.uri):
            raise ValueError(
                "retrain.onNewData needs data.uri to name partitions: a pattern such as "
                "s3://bucket/churn/month=*/*.csv"
            )
        return self

    @model_validator(mode="after")
    def _labels_land_in_the_data(self) -> MLPipelineSpec:
        if self.labeling is None:
            return self
        if self.train.task != Task.classification.value:
            raise ValueError("labeling applies to classification only")
        written = self.labeling.partition_name("2026-01-01T00:00:00Z", "r")
        if not fnmatch.fnmatchcase(written, self.data.uri):
            raise ValueError(
                f"labeling.into: the partitions it receives ({written.replace('20260101T000000Z-r', '*')}) "
                f"are not matched by data.uri {self.data.uri!r}, so no run would train on them"
            )
        return self


# ----------------------------------------------------------------------------------------- status


class StatusModel(Model):
    """Base of the status: read back from the API server, so fields of another operator version
    are ignored rather than refused."""

    model_config = ConfigDict(extra="ignore")


class PipelinePhase(StrEnum):
    """Where a pipeline is in its cycle (status.phase): a run's step, then what serves its model."""

    ingesting = "Ingesting"
    preprocessing = "Preprocessing"
    tuning = "Tuning"
    evaluating = "Evaluating"
    packaging = "Packaging"
    packaged = "Packaged"  # the run's model packaged (the end, with serving off)
    deploying = "Deploying"  # the first stable version's replicas starting (cluster)
    serving = "Serving"
    canary = "Canary"
    rolled_back = "RolledBack"
    failed = "Failed"


class StepPhase(StrEnum):
    pending = "Pending"
    running = "Running"
    succeeded = "Succeeded"
    failed = "Failed"
    cached = "Cached"


class StepStatus(StatusModel):
    name: str
    phase: StepPhase = StepPhase.pending
    job: str | None = None
    attempts: int = 0
    started_at: str | None = None
    finished_at: str | None = None
    message: str | None = None
    key: str | None = Field(
        default=None,
        description="The step's key: a hash of the spec sections it reads, its inputs' keys, the code "
        "version and, for ingest, the data's fingerprint. Known once ingest has taken that fingerprint.",
    )
    cached: bool = Field(
        default=False,
        description="The step reused the output an earlier run left for the same key (job: the Job "
        "that produced it) instead of running.",
    )


class RunStatus(StatusModel):
    id: str
    trigger: str = Field(description="What started the run: create, spec, rerun, schedule, data or drift.")
    trigger_value: str | None = Field(default=None, description="The value that fired the trigger.")
    generation: int | None = None
    started_at: str | None = None
    finished_at: str | None = None
    data: str | None = Field(
        default=None, description="The data's fingerprint, as ingest took it (listing, not reading, it)."
    )
    rerun: str | None = Field(default=None, description="The mlpipeline.dev/rerun annotation at its start.")
    reuse: bool = Field(
        default=True,
        description="Whether the run reuses earlier step outputs: false when spec.steps.cache is false "
        "or a new mlpipeline.dev/rerun value starting with force started it.",
    )
    steps: list[StepStatus] = Field(default_factory=list)


class StepOutput(StatusModel):
    """A step output in the artifact store that a later run reuses when its step has the same key."""

    step: str
    key: str
    uri: str
    job: str = Field(description="The Job that produced it.")
    finished_at: str | None = None


class Condition(StatusModel):
    type: str
    status: Literal["True", "False", "Unknown"]
    reason: str | None = None
    message: str | None = None
    last_transition_time: str | None = None


class Baseline(StatusModel):
    """The version that served when a model was evaluated, measured beside it on the same held-out
    rows (those neither model trained on): what its canary is judged against."""

    version: str = Field(description="The serving version compared with.")
    metric: str = Field(description="The gate metric (spec.evaluate.metric).")
    rows: int = Field(description="Held-out rows both models were scored on.")
    score: float | None = Field(default=None, description="The serving version's score on those rows.")
    candidate_score: float | None = Field(default=None, description="This model's score on those rows.")
    score_error: float | None = Field(
        default=None,
        description="Standard error of candidateScore - score on those rows (paired bootstrap): the "
        "difference chance makes on so few rows.",
    )
    prediction_shift: float | None = Field(
        default=None,
        description="PSI of this model's predicted classes against the serving version's: the shift its "
        "canary is expected to show (classification only). Measured on every row of the newest "
        "partition when spec.data.uri read several (what live traffic looks like now), else on those "
        "held-out rows.",
    )
    shift_rows: int | None = Field(default=None, description="Rows predictionShift was measured on.")


class ModelStatus(StatusModel):
    version: str | None = None
    metric: str | None = Field(default=None, description="The gate metric (spec.evaluate.metric).")
    score: float | None = Field(default=None, description="The gate metric on the held-out test split.")
    artifact: str | None = None
    report: str | None = Field(
        default=None,
        description="The run report (HTML in the artifact store): trials, learning curves, confusion "
        "matrix or residuals.",
    )
    baseline: Baseline | None = Field(
        default=None, description="The serving version it was compared with at evaluate, if one served."
    )


class AnalysisCheck(StatusModel):
    """One check of one canary analysis: the query, its value, the threshold and the verdict."""

    name: str
    query: str = Field(description="The PromQL behind the value.")
    value: float | None = None
    threshold: float
    verdict: Literal["pass", "fail", "nodata"]
    stable: float | None = Field(default=None, description="The same measure on the stable version.")
    expected: float | None = Field(
        default=None,
        description="predictionShift: the shift measured at evaluate; the value may depart from it by "
        "at most the threshold.",
    )

    def describe(self) -> str:
        value = "no data" if self.value is None else f"{self.value:.4g}"
        if self.expected is not None:
            bounds = f"expected {self.expected:.4g} ± {self.threshold:.4g}"
            return f"{self.name}={value} ({bounds}): {self.verdict}"
        return f"{self.name}={value} (threshold {self.threshold:.4g}): {self.verdict}"


class ControlStatus(StatusModel):
    """The last value of the mlpipeline.dev/canary annotation the operator saw, and what it did."""

    value: str | None = Field(default=None, description="The annotation's value (null: removed).")
    action: str | None = Field(default=None, description="pause, resume, promote, abort or none.")
    canary: str | None = Field(default=None, description="The canary it applied to, if any.")
    at: str | None = Field(default=None, description="When it was seen.")
    message: str | None = None


class ServingPhase(StrEnum):
    stable = "Stable"
    progressing = "Progressing"
    paused = "Paused"
    promoted = "Promoted"
    rolled_back = "RolledBack"


class ServingStatus(StatusModel):
    stable: str | None = Field(default=None, description="Model version receiving the traffic.")
    canary: str | None = Field(default=None, description="Model version being rolled out.")
    canary_weight: int = Field(default=0, description="Percent of traffic sent to the canary.")
    phase: ServingPhase | None = Field(
        default=None, description="Stable, Progressing, Paused, Promoted or RolledBack."
    )
    message: str | None = None
    provider: str | None = Field(default=None, description="gatewayAPI, replicas or router (local).")
    step: int | None = Field(default=None, description="Index of the current canary step.")
    step_started_at: str | None = None
    analyzed_at: str | None = None
    failures: int | None = Field(default=None, description="Consecutive failed analyses.")
    no_data_since: str | None = None
    rolled_back: str | None = Field(default=None, description="The last version rolled back.")
    checks: list[AnalysisCheck] = Field(default_factory=list, description="The last analysis.")
    control: ControlStatus | None = None
    applied: str | None = Field(
        default=None, description="Digest of the spec.serve that the serving objects were last applied from."
    )


class TriggerRecord(StatusModel):
    """One trigger the operator acted on."""

    kind: str = Field(description="schedule, data or drift")
    value: str = Field(description="What fired: the scheduled time, or the drifted features and values.")
    at: str = Field(description="When the operator acted on it.")
    action: Literal["started", "skipped", "labeling"] = Field(
        description="started a run; skipped it; labeling: drift without new data asked people to "
        "label the drifted served records instead of retraining on the same data"
    )
    reason: str | None = Field(default=None, description="Why it was skipped, or why labeling.")


class DataStatus(StatusModel):
    """The partitions of spec.data.uri as the operator last listed them."""

    listed_at: str | None = None
    partitions: int | None = Field(default=None, description="Partitions the pattern matched.")
    processed: str | None = Field(
        default=None, description="The newest partition a run was started for; later names are new."
    )
    pending: list[str] = Field(
        default_factory=list, description="New partitions not yet trained on: the oldest 20."
    )
    pending_count: int | None = Field(default=None, description="New partitions not yet trained on, all.")
    message: str | None = Field(default=None, description="Why pending partitions wait, or a listing error.")


class DriftAnswer(StatusModel):
    """How sustained drift without new data was answered."""

    version: str | None = Field(default=None, description="The serving version that drifted.")
    run: str | None = Field(default=None, description="The latest run then (its inputs are unchanged).")
    at: str
    action: Literal["labeling", "skipped"]
    message: str = Field(description="That drift persists, and what to do.")


class RetrainStatus(StatusModel):
    """The record of the retraining triggers: what fired, and from when the schedule counts."""

    schedule: str | None = Field(default=None, description="The schedule and time zone being followed.")
    since: str | None = Field(default=None, description="Scheduled times after this one are due.")
    next_at: str | None = Field(default=None, description="The next scheduled time.")
    token: str | None = Field(default=None, description="What makes the triggered run's identity new.")
    fired_at: str | None = Field(default=None, description="When the last triggered run started.")
    drift_since: str | None = Field(
        default=None, description="Since when drift has stayed above the threshold."
    )
    data: DataStatus | None = None
    last: TriggerRecord | None = None
    drift_without_new_data: DriftAnswer | None = Field(
        default=None,
        description="Sustained drift with no new data since the latest run, answered once (a labeling "
        "round, or a skip) instead of rerunning the same inputs; cleared by new data, a run, a new "
        "serving version, or drift that clears.",
    )


class FeatureDriftStatus(StatusModel):
    name: str = Field(description="A feature, or 'prediction'.")
    value: float | None = Field(default=None, description="Jensen-Shannon distance; null: not enough data.")
    drifted: bool = False


class MonitoringStatus(StatusModel):
    """The stable version's drift as its servers last exported it to Prometheus."""

    model_version: str | None = None
    measured_at: str | None = Field(default=None, description="When the operator read it.")
    samples: int | None = Field(default=None, description="Served samples in the drift window.")
    threshold: float | None = None
    features: list[FeatureDriftStatus] = Field(default_factory=list)
    report: str | None = Field(default=None, description="The drift report (HTML) in the artifact store.")
    message: str | None = None


class LabelRoundPhase(StrEnum):
    proposing = "Proposing"  # the model predicts, picks and sends tasks to people
    awaiting = "AwaitingPeople"  # people label; the merge step collects their answers
    merged = "Merged"  # the partition is written
    failed = "Failed"


class LabelRound(StatusModel):
    """One labeling round: the counts a person checks the loop by."""

    id: str
    attempt: int = Field(default=1, description="1, or the retry of a failed round over the same files.")
    model: str = Field(description="The model version that labeled.")
    phase: LabelRoundPhase = LabelRoundPhase.proposing
    started_at: str | None = None
    deadline: str | None = Field(default=None, description="When the round stops waiting for people.")
    finished_at: str | None = None
    sources: list[str] = Field(
        default_factory=list, description="The unlabeled files of the round: the oldest 100 that settled."
    )
    served_from: str | None = Field(
        default=None,
        description="A round started by drift: only served records captured from this time (the "
        "sources are the serving capture's hours) ...",
    )
    served_to: str | None = Field(default=None, description="... to this time.")
    records: int | None = None
    auto_labeled: int | None = Field(default=None, description="Labeled by the model (confident).")
    sent_to_people: int | None = Field(default=None, description="Uncertain records sent to people.")
    audited: int | None = Field(default=None, description="Automatic labels sent to people to audit.")
    labeled_by_people: int | None = None
    audit_disagreement: float | None = Field(
        default=None, description="Share of answered audit tasks where people chose another class."
    )
    auto_labels_used: bool | None = Field(default=None, description="Whether the partition has them.")
    partition: str | None = Field(
        default=None, description="The labeled partition written (dataset version)."
    )
    rows: int | None = Field(default=None, description="Rows of that partition.")
    project: str | None = Field(
        default=None, description="Where people label (Label Studio URL or import file)."
    )
    retry_at: str | None = Field(default=None, description="When a failed round is tried again.")
    message: str | None = None


class LabelingStatus(StatusModel):
    """The labeling rounds: the source as last listed and the current or last round."""

    listed_at: str | None = None
    processed: str | None = Field(
        default=None, description="The newest source file a round took; later ones are new."
    )
    pending: list[str] = Field(
        default_factory=list, description="Source files waiting for the next round: the oldest 20."
    )
    pending_count: int | None = Field(default=None, description="Source files waiting, all of them.")
    round: LabelRound | None = None
    message: str | None = None


class MLPipelineStatus(StatusModel):
    model_config = ConfigDict(extra="allow")

    phase: PipelinePhase | None = Field(default=None, description="Where the pipeline is in its cycle.")
    message: str | None = None
    observed_generation: int | None = None
    conditions: list[Condition] = Field(default_factory=list)
    run: RunStatus | None = None
    model: ModelStatus | None = None
    serving: ServingStatus | None = None
    retrain: RetrainStatus | None = None
    monitoring: MonitoringStatus | None = None
    labeling: LabelingStatus | None = None
    outputs: list[StepOutput] = Field(
        default_factory=list,
        description="Step outputs later runs may reuse (spec.steps.cache), the newest few per step.",
    )

    def to_wire(self) -> dict[str, Any]:
        """The status as the API server stores it: camelCase, unset fields left out."""
        return self.model_dump(
            by_alias=True, mode="json", exclude_none=True, exclude=set(self.__pydantic_extra__ or {})
        )


class Metadata(BaseModel):
    model_config = ConfigDict(extra="allow")

    name: str = Field(min_length=1, max_length=40, pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
    namespace: str | None = None
    annotations: dict[str, str] = Field(default_factory=dict)
    labels: dict[str, str] = Field(default_factory=dict)


class MLPipeline(BaseModel):
    """A whole manifest: what ``kubectl apply`` and ``mlpipeline run`` read."""

    model_config = ConfigDict(populate_by_name=True, extra="allow")

    api_version: Literal["mlpipeline.dev/v1alpha1"] = Field(alias="apiVersion")
    kind: Literal["MLPipeline"]
    metadata: Metadata
    spec: MLPipelineSpec
    status: MLPipelineStatus | None = None
