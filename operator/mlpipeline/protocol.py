"""What the control plane (operator, local runner) and the data plane (step pods, model servers)
agree on: object names, label and annotation keys, the artifact layout, exit codes, the time format.

Imports nothing beyond the standard library, so that the operator can name what a step writes
without loading what the step needs (sklearn, pandas, Ray, BentoML).
"""

from __future__ import annotations

from datetime import UTC, datetime

# Labels on every object a pipeline owns (the operator's own: under OPERATOR_LABEL_PREFIX, and the
# component, which Services select on).
OPERATOR_LABEL_PREFIX = "mlpipeline.dev/"
PIPELINE_LABEL = "mlpipeline.dev/pipeline"
RUN_LABEL = "mlpipeline.dev/run"
STEP_LABEL = "mlpipeline.dev/step"
VERSION_LABEL = "mlpipeline.dev/model-version"
COMPONENT_LABEL = "app.kubernetes.io/component"
SERVING_COMPONENT = "serving"

# Annotations users set on an MLPipeline.
RERUN_ANNOTATION = "mlpipeline.dev/rerun"  # any new value starts a new run of the same spec
FORCE_RERUN = "force"  # a new rerun value that starts with it reuses no earlier step's output
CONTROL_ANNOTATION = "mlpipeline.dev/canary"  # pause | resume | promote | abort, acted on once

# A request header marking mlpipeline's own traffic (a canary's load of held-out rows, a sample
# prediction): the model server answers and counts it, but never captures it for drift or labeling.
SYNTHETIC_HEADER = "x-mlpipeline-synthetic"

# The environment variable a labeling step reads its Label Studio token from.
TOKEN_ENV = "LABEL_STUDIO_API_KEY"

# Exit codes of `python -m mlpipeline.steps`.
EXIT_OK = 0
EXIT_FAILED = 2  # the step failed: bad input or a broken invariant; retrying cannot help
EXIT_GATE = 3  # the evaluation gate refused the model
PERMANENT_EXIT_CODES = (EXIT_FAILED, EXIT_GATE)
EXIT_MESSAGES = {EXIT_FAILED: "the step failed", EXIT_GATE: "the evaluation gate refused the model"}

# The artifact layout: <base>/<namespace>/<pipeline>/<run>/<step>/<file>.
RESULT_FILE = "result.json"  # every step: {"ok": bool, "message"|"summary": str, ...}
METRICS_FILE = "metrics.json"  # evaluate: {"metrics": {...}, "params": {...}, "gate": {...}}
MODEL_EXPORT = "model.bentomodel"  # package: the exported BentoML model a server imports

ARTIFACTS_MOUNT = "/artifacts"  # where spec.artifacts.pvc is mounted in step and model pods

RUN_ID_LENGTH = 10  # a Job name is <pipeline (≤40)>-<run>-<step (≤10)>: at most 63 characters
KEY_LENGTH = 12  # of a step's key in the name of its content-addressed output


def step_output(base: str, namespace: str, pipeline: str, run: str, step: str) -> str:
    return f"{base.rstrip('/')}/{namespace}/{pipeline}/{run}/{step}"


def steps_root(base: str, namespace: str, pipeline: str) -> str:
    """Where a pipeline's reusable step outputs lie, each named by its key (see ``keyed``)."""
    return f"{base.rstrip('/')}/{namespace}/{pipeline}/steps"


def keyed(out: str, key: str) -> str:
    """A step's content-addressed output: ``<root>/<step>`` named by the step's key."""
    return f"{out.rstrip('/')}-{key[:KEY_LENGTH]}"


def label_output(base: str, namespace: str, pipeline: str, round_id: str, step: str) -> str:
    """Where a labeling round's step writes: <base>/<namespace>/<pipeline>/labeling/<round>/<step>."""
    return f"{base.rstrip('/')}/{namespace}/{pipeline}/labeling/{round_id}/{step}"


def is_pattern(uri: str) -> bool:
    """A data URI with glob characters names partitions (``s3://b/churn/month=*/*.csv``)."""
    return any(c in uri for c in "*?[")


def capture_uri(base: str, namespace: str, pipeline: str) -> str:
    """Where a pipeline's model servers write what they capture (every version, partitioned)."""
    return f"{base.rstrip('/')}/{namespace}/{pipeline}/capture"


def drift_report_uri(capture: str, version: str) -> str:
    """The drift report a version's servers keep up to date beside the captures."""
    return f"{capture.rstrip('/')}/report/version={version}/drift.html"


def job_name(pipeline: str, run: str, step: str) -> str:
    return f"{pipeline}-{run}-{step}"


def model_name(pipeline: str) -> str:
    """The BentoML model name of a pipeline; its versions are the run ids."""
    return "mlp-" + pipeline.lower()


def model_tag(pipeline: str, version: str) -> str:
    return f"{model_name(pipeline)}:{version}"


def model_of(tag: str) -> str:
    """The model name of a tag ``name:version``."""
    return tag.split(":", 1)[0]


def version_of(tag: str) -> str:
    """The version of a tag ``name:version``."""
    return tag.split(":", 1)[1]


def model_object_name(pipeline: str, version: str) -> str:
    """The Deployment and Service of one model version."""
    return f"{pipeline}-model-{version}"


def route_name(pipeline: str) -> str:
    return f"{pipeline}-model"


def stamp(moment: datetime) -> str:
    """The one time format of the status: RFC 3339 in UTC, whole seconds."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_stamp(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))
