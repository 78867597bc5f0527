"""Which earlier runs' Jobs a pipeline deletes (spec.steps.historyLimit)."""

from __future__ import annotations

from typing import Any

from mlpipeline.engine.history import runs_to_prune
from mlpipeline.protocol import RUN_LABEL


def job(run: str, created: str, step: str = "ingest") -> dict[str, Any]:
    return {
        "metadata": {
            "name": f"iris-{run}-{step}",
            "labels": {RUN_LABEL: run},
            "creationTimestamp": f"2026-11-26T{created}Z",
        }
    }


# Runs a, b, c, d in that order (each run's Jobs over some minutes); d is the current one.
HISTORY = [
    job("c", "10:20:00"), job("a", "10:00:00"), job("b", "10:10:00"), job("d", "10:30:00"),
    job("a", "10:05:00", "tune"), job("b", "10:15:00", "tune"), job("c", "10:25:00", "tune"),
]  # fmt: skip


def test_the_oldest_runs_beyond_the_limit_go_and_the_current_run_never() -> None:
    assert runs_to_prune(HISTORY, "d", 3) == []
    assert runs_to_prune(HISTORY, "d", 2) == ["a"]
    assert runs_to_prune(HISTORY, "d", 0) == ["a", "b", "c"]


def test_a_run_started_again_is_current_whatever_its_age() -> None:
    """A rerun of an old run id (the same spec and data again) keeps its Jobs."""
    assert runs_to_prune(HISTORY, "a", 1) == ["b", "c"]


def test_jobs_without_a_run_are_not_a_run() -> None:
    unlabeled = {"metadata": {"name": "other", "labels": {}, "creationTimestamp": "2026-11-26T09:00:00Z"}}
    assert runs_to_prune([unlabeled, *HISTORY], "d", 2) == ["a"]
