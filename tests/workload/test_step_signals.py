"""A step in a pod is PID 1 of its PID namespace, and Linux gives PID 1 no default action for
SIGTERM: without a handler the pod waits out its grace period. The step handles it."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time

import pytest

BLOCK = "print('ready', flush=True); import time; time.sleep(60)"
HANDLED = "from mlpipeline.steps.__main__ import stop_on_sigterm; stop_on_sigterm(); " + BLOCK


def as_pid_1(code: str) -> tuple[subprocess.Popen[bytes], int]:
    """Runs ``code`` as PID 1 of a new PID namespace; returns the process and its host pid."""
    process = subprocess.Popen(
        ["unshare", "--pid", "--fork", sys.executable, "-c", code], stdout=subprocess.PIPE
    )
    assert process.stdout is not None and process.stdout.readline().strip() == b"ready"
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        children = subprocess.run(
            ["pgrep", "-P", str(process.pid)], capture_output=True, text=True
        ).stdout.split()
        if children:
            return process, int(children[0])
        time.sleep(0.05)
    raise AssertionError("the namespaced process did not start")


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("unshare"), reason="needs root and unshare")
def test_a_step_as_pid_1_stops_at_sigterm() -> None:
    plain, plain_pid = as_pid_1(BLOCK)
    handled, handled_pid = as_pid_1(HANDLED)
    try:
        os.kill(plain_pid, signal.SIGTERM)
        os.kill(handled_pid, signal.SIGTERM)
        assert handled.wait(timeout=10) == 128 + signal.SIGTERM
        time.sleep(1)
        assert plain.poll() is None  # the control: PID 1 without a handler ignores SIGTERM
    finally:
        for process, pid in ((plain, plain_pid), (handled, handled_pid)):
            if process.poll() is None:
                os.kill(pid, signal.SIGKILL)
                process.wait(timeout=10)
