"""The pipeline's steps, what each consumes, and the content hash (key) that identifies its output.

Pure functions shared by the local runner and the operator: a step's key covers the spec sections
it reads, the keys of its inputs and the code version (ingest's, the data's fingerprint), so an
unchanged step is reused by both executors, and a run's Jobs get the same names after an operator
restart (in a cluster).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from mlpipeline import __version__
from mlpipeline.api.models import MLPipelineSpec
from mlpipeline.protocol import RUN_ID_LENGTH

STEPS: tuple[str, ...] = ("ingest", "preprocess", "tune", "evaluate", "package")

# input flag of the step command -> the step whose output it is
INPUTS: dict[str, tuple[str, ...]] = {
    "ingest": (),
    "preprocess": ("ingest",),
    "tune": ("ingest", "preprocess"),
    "evaluate": ("ingest", "preprocess", "tune"),
    "package": ("ingest", "preprocess", "evaluate"),
}
INPUT_FLAG = {"ingest": "--data", "preprocess": "--preprocess", "tune": "--tune", "evaluate": "--evaluate"}

# the parts of the spec (by alias) each step reads
SECTIONS: dict[str, tuple[str, ...]] = {
    "ingest": ("data", "train.task"),
    "preprocess": ("preprocess",),
    "tune": ("train", "data.seed"),
    "evaluate": ("evaluate", "train", "data.seed"),
    "package": (),
}


def _section(document: dict[str, Any], dotted: str) -> Any:
    value: Any = document
    for part in dotted.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value


def digest(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()


def _parts(document: dict[str, Any], step: str) -> dict[str, Any]:
    return {"step": step, "code": __version__, "spec": {s: _section(document, s) for s in SECTIONS[step]}}


def ingest_spec_key(spec: MLPipelineSpec) -> str:
    """What of ingest's key the spec decides (the data's fingerprint completes it: ``with_data``):
    the operator hands it to the ingest pod, which alone lists the data."""
    return digest(_parts(spec.model_dump(by_alias=True, mode="json"), "ingest"))


def with_data(spec_key: str, data_fingerprint: str) -> str:
    return digest({"ingest": spec_key, "data": data_fingerprint})


def fingerprints(spec: MLPipelineSpec, data_fingerprint: str, pipeline: str) -> dict[str, str]:
    """The key of every step, in order: a hash of the spec sections it reads, the code version and
    its inputs' keys; ingest's covers the data's fingerprint. A step whose key an earlier run
    produced is reused (both executors), so a change reruns its step and every step after it."""
    document = spec.model_dump(by_alias=True, mode="json")
    out: dict[str, str] = {"ingest": with_data(ingest_spec_key(spec), data_fingerprint)}
    for step in STEPS[1:]:
        parts = _parts(document, step) | {"inputs": [out[i] for i in INPUTS[step]]}
        if step == "package":
            parts["pipeline"] = pipeline
        out[step] = digest(parts)
    return out


def with_serving(keys: dict[str, str], serving: str | None) -> dict[str, str]:
    """The keys under which step outputs are reused: evaluate's also covers the version that
    serves, which it measures beside its model (status.model.baseline, what the canary expects), so
    that a baseline measured against another version is not reused. The run's identity (run_id)
    does not depend on it."""
    if not serving or "evaluate" not in keys:
        return keys
    return keys | {"evaluate": digest({"evaluate": keys["evaluate"], "serving": serving})}


def run_id(spec: MLPipelineSpec, pipeline: str, data_fingerprint: str = "", rerun: str | None = None) -> str:
    """A run's identity, the same for both executors: what training reads (the data section and its
    content, preprocess, train, evaluate, the code version) plus the rerun token. Serving and canary
    settings are not part of it, so editing them re-applies serving without retraining. The local
    runner knows the data's content hash; the operator does not read data, so there the data is
    identified by the data section alone."""
    training = fingerprints(spec, data_fingerprint, pipeline)["package"]
    return digest({"training": training, "rerun": rerun or ""})[:RUN_ID_LENGTH]


@dataclass(frozen=True)
class StepInvocation:
    step: str
    out: str
    inputs: dict[str, str]
    pipeline: str
    run: str
    version: str
    spec_uri: str | None = None
    # ingest in a cluster: its spec key (ingest_spec_key); it writes under ``out`` named by its key
    # with the data's fingerprint, which it takes, and reuses an output already there when ``reuse``
    keyed: str | None = None
    reuse: bool = True
    serving: str | None = None  # evaluate: the BentoML tag of the model that serves, if one does
    serving_uri: str | None = None  # ... and its export, for a pod whose model store lacks it

    def args(self) -> list[str]:
        """Arguments of ``python -m mlpipeline.steps`` (Job container and local subprocess)."""
        argv = [self.step, "--out", self.out]
        if self.spec_uri:
            argv += ["--spec", self.spec_uri]
        if self.keyed:
            argv += ["--keyed", self.keyed] + ([] if self.reuse else ["--no-cache"])
        for producer in INPUTS[self.step]:
            argv += [INPUT_FLAG[producer], self.inputs[producer]]
        if self.step == "evaluate" and self.serving:
            argv += ["--serving", self.serving]
            if self.serving_uri:
                argv += ["--serving-uri", self.serving_uri]
        if self.step == "package":
            argv += ["--pipeline", self.pipeline, "--run", self.run, "--version", self.version]
        return argv
