"""Steps started from a warm process: a fork server that has imported what every step imports
(pandas, pyarrow, scikit-learn, pydantic and the steps' own modules) forks each step, so a step
pays for its own work rather than for two to four seconds of imports. Each step still runs in a
process of its own, with its log, environment and exit code, as ``python -m mlpipeline.steps``
would.

A step's process can be forked before its turn (``StepProcess``): it then takes the step's
environment and imports what only that step needs (Ray Tune, matplotlib, BentoML) on another core
while the steps before it run, and waits for its arguments."""

from __future__ import annotations

import contextlib
import importlib
import multiprocessing
import os
import sys
from multiprocessing.connection import Connection
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
# What a step imports beyond PRELOAD, too heavy for every step to carry (1-2 s each); the steps
# that train or load the model import its module too (PyTorch: 2 s).
WARM_UP = {
    "tune": ("mlpipeline.steps.inline_trials",),  # all of Ray Tune
    "evaluate": ("matplotlib.pyplot",),  # the run report's figures
    "package": ("bentoml",),
}
MODEL_STEPS = ("tune", "evaluate", "package")
_context: Any = None


def _forkserver() -> Any:
    global _context
    if _context is None:
        _context = multiprocessing.get_context("forkserver")
        _context.set_forkserver_preload(PRELOAD)
    return _context


def _redirect(path: str) -> None:
    with open(path, "ab", buffering=0) as handle:
        os.dup2(handle.fileno(), 1)
        os.dup2(handle.fileno(), 2)


def _serve(orders: Connection, modules: tuple[str, ...], env: dict[str, str], cwd: str) -> None:
    _redirect(os.devnull)  # until its turn: nothing on the runner's console, the step's log untouched
    os.environ.clear()
    os.environ.update(env)
    os.chdir(cwd)
    for module in modules:
        with contextlib.suppress(Exception):  # the step imports it again and reports the failure
            importlib.import_module(module)
    try:
        argv, log = orders.recv()
    except EOFError:  # discarded, or the runner is gone
        sys.exit(0)
    _redirect(log)
    from mlpipeline.steps.__main__ import main

    code = main(argv)
    sys.stdout.flush()
    sys.stderr.flush()
    sys.exit(code)


def warm_up(step: str, model_module: str) -> tuple[str, ...]:
    """What the step's process imports before its turn."""
    model = (model_module,) if model_module and step in MODEL_STEPS else ()
    return WARM_UP.get(step, ()) + model


class StepProcess:
    """``python -m mlpipeline.steps ARGV`` in a process forked from the warm server with ``env``;
    forked now, given its arguments and log by ``run``; ``model_module``: the module of the
    pipeline's model, imported ahead by the steps that need it."""

    def __init__(self, step: str, env: dict[str, str], model_module: str = "") -> None:
        context = _forkserver()
        theirs, self._orders = context.Pipe(duplex=False)
        self._process = context.Process(
            target=_serve,
            args=(theirs, warm_up(step, model_module), env, os.getcwd()),
            name=f"mlpipeline-{step}",
        )
        self._process.start()
        theirs.close()

    def run(self, argv: list[str], log: str) -> int:
        """Runs the step with ``argv``, its output appended to ``log``; returns its exit code."""
        try:
            with contextlib.suppress(BrokenPipeError):  # it died before its turn: its exit code says how
                self._orders.send((argv, log))
            self._process.join()
        except BaseException:
            self.discard()
            raise
        return int(self._process.exitcode if self._process.exitcode is not None else 1)

    def discard(self) -> None:
        """Stops the process, whether it ran or not."""
        self._process.kill()
        self._process.join()
        self._orders.close()
