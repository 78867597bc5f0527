"""KubeRay for the cluster and real tiers: its CRDs applied and its operator (built from its Go module
by `make control-plane`) running as a process out of the cluster; its RayJobs and RayClusters
removed afterwards, its CRDs left installed. Out of the cluster it cannot resolve the head Service's
DNS name: it reaches each head's dashboard through the API server's proxy (-use-kubernetes-proxy)."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from mlpipeline.local.server import free_port

KUBERAY_VERSION = "1.5.0"
CACHE = Path(os.environ.get("MLP_CACHE", Path.home() / ".cache" / "mlpipeline"))
RAY_OPERATOR = CACHE / "bin" / f"ray-operator-v{KUBERAY_VERSION}" / "ray-operator"
CRDS = CACHE / "crds" / f"kuberay-v{KUBERAY_VERSION}"


@contextmanager
def running_kuberay(kubeconfig: Path, logs: Path) -> Iterator[subprocess.Popen[bytes]]:
    from tests.cluster.conftest import kubectl

    assert RAY_OPERATOR.exists(), f"{RAY_OPERATOR} missing: run make control-plane"
    kubectl("apply", "--server-side", "-f", str(CRDS), timeout=120)
    for crd in ("rayclusters.ray.io", "rayjobs.ray.io"):
        kubectl("wait", "--for=condition=Established", f"crd/{crd}", "--timeout=60s")
    with (logs / "ray-operator.log").open("wb") as log:
        ray_operator = subprocess.Popen(
            [
                str(RAY_OPERATOR),
                "-kubeconfig", str(kubeconfig),
                "-enable-leader-election=false",
                "-use-kubernetes-proxy",
                f"-metrics-addr=127.0.0.1:{free_port()}",
                f"-health-probe-bind-address=127.0.0.1:{free_port()}",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        yield ray_operator
    finally:
        # While KubeRay still runs: it removes its finalizers from what is deleted. The CRDs stay:
        # deleting a CRD that operators watch is a race kopf can lose (a watch of a resource gone
        # from the API stops the operator, which then exits for its pod to restart, see handlers.py).
        for kind in ("rayjobs", "rayclusters"):
            kubectl("delete", kind, "--all", "--all-namespaces", "--wait=true", check=False, timeout=120)
        ray_operator.terminate()
        ray_operator.wait(timeout=30)
