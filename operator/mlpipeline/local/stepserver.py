"""Steps started from a warm process: a fork server that has imported what every step imports
(pandas, pyarrow, scikit-learn, pydantic and the steps' own modules) forks each step, so a step
pays for its own work rather than for two to four seconds of imports. Each step still runs in a
process of its own, with its log, environment and exit code, as ``python -m mlpipeline.steps``
would."""

from __future__ import annotations

import multiprocessing
import os
import sys
from typing import Any

PRELOAD = [
    "mlpipeline.steps.__main__",
    "mlpipeline.steps.ingest",
    "mlpipeline.steps.preprocess",
    "mlpipeline.steps.evaluate",
    "mlpipeline.steps.dataset",
    "mlpipeline.api.models",
    "pyarrow.parquet",
    "sklearn.ensemble",
    "sklearn.linear_model",
    "sklearn.model_selection",
]
_context: Any = None


def _run(argv: list[str], log: str, env: dict[str, str], cwd: str) -> None:
    with open(log, "ab", buffering=0) as handle:
        os.dup2(handle.fileno(), 1)
        os.dup2(handle.fileno(), 2)
    os.environ.clear()
    os.environ.update(env)
    os.chdir(cwd)
    from mlpipeline.steps.__main__ import main

    code = main(argv)
    sys.stdout.flush()
    sys.stderr.flush()
    sys.exit(code)


def run_step(argv: list[str], log: str, env: dict[str, str]) -> int:
    """Runs ``python -m mlpipeline.steps ARGV`` in a process forked from the warm server; its output
    goes to ``log``; returns its exit code."""
    global _context
    if _context is None:
        _context = multiprocessing.get_context("forkserver")
        _context.set_forkserver_preload(PRELOAD)
    process = _context.Process(target=_run, args=(argv, log, env, os.getcwd()), name="mlpipeline-step")
    process.start()
    try:
        process.join()
    except BaseException:
        process.kill()
        process.join()
        raise
    return int(process.exitcode if process.exitcode is not None else 1)
