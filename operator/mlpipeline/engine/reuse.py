"""Which step outputs a run in the cluster reuses: pure, like the rest of the engine.

A step's output lies in the artifact store under a name made of its key (``protocol.keyed``), and the
status remembers the outputs that steps left (``status.outputs``): a run reuses the one its step's
key names instead of creating the step's Job. Ingest alone knows the data's fingerprint, so it runs
in every run and itself reuses the output it finds under its key (without reading the data); package
stamps the run's id into the model, so it runs in every run too.
"""

from __future__ import annotations

from collections.abc import Sequence

from mlpipeline.api.models import MLPipelineSpec, RunStatus, StepOutput
from mlpipeline.engine.plan import fingerprints, with_serving
from mlpipeline.protocol import FORCE_RERUN, keyed

REUSED = ("preprocess", "tune", "evaluate")
KEPT = 5  # outputs remembered per step: enough to go back and forth between a few settings


def output_uri(root: str, step: str, key: str) -> str:
    """Where the step of this key writes, under ``protocol.steps_root``."""
    return keyed(f"{root.rstrip('/')}/{step}", key)


def reuses(spec: MLPipelineSpec, rerun: str | None, previous: RunStatus | None) -> bool:
    """Whether a run starting now may reuse earlier outputs: not when spec.steps.cache is off, nor
    when the rerun annotation got a new value that starts with ``force``."""
    forced = bool(rerun and rerun.startswith(FORCE_RERUN) and (previous is None or previous.rerun != rerun))
    return spec.steps.cache and not forced


def step_keys(
    spec: MLPipelineSpec, pipeline: str, run: RunStatus, serving: str | None = None
) -> dict[str, str]:
    """The key of every step once ingest has taken the data's fingerprint; empty before (or when
    the ingest image reported none). ``serving``: the version that serves (plan.with_serving)."""
    return with_serving(fingerprints(spec, run.data, pipeline), serving) if run.data else {}


def find(outputs: Sequence[StepOutput], step: str, key: str, root: str) -> StepOutput | None:
    """The output an earlier run left for this step and key under this store, if any."""
    uri = output_uri(root, step, key)
    return next((o for o in outputs if o.step == step and o.key == key and o.uri == uri), None)


def remember(outputs: Sequence[StepOutput], new: StepOutput) -> list[StepOutput]:
    """``outputs`` with ``new`` first (in place of one of the same step and key), at most ``KEPT``
    per step."""
    kept: list[StepOutput] = [new]
    for output in outputs:
        replaced = output.step == new.step and output.key == new.key
        if not replaced and sum(o.step == output.step for o in kept) < KEPT:
            kept.append(output)
    return kept


def forget(outputs: Sequence[StepOutput], step: str, key: str) -> list[StepOutput]:
    """``outputs`` without this step's output of this key: a Job about to write it again (a forced
    run) may leave it half rewritten."""
    return [o for o in outputs if not (o.step == step and o.key == key)]
