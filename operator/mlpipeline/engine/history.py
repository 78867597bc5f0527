"""Which earlier runs' step Jobs go: a pipeline that retrains on a schedule would otherwise keep
every run's Jobs and pods in the cluster (and in the operator's memory) forever."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from mlpipeline.protocol import RUN_LABEL


def runs_to_prune(jobs: Sequence[Mapping[str, Any]], current: str, keep: int) -> list[str]:
    """The runs other than ``current`` beyond the newest ``keep``, oldest first; a run's age is its
    first Job's creation."""
    began: dict[str, str] = {}
    for job in jobs:
        meta = job["metadata"]
        run = (meta.get("labels") or {}).get(RUN_LABEL)
        if run and run != current:
            created = meta.get("creationTimestamp") or ""
            began[run] = min(began.get(run, created), created)
    oldest_first = sorted(began, key=lambda run: (began[run], run))
    return oldest_first[: max(len(oldest_first) - keep, 0)]
