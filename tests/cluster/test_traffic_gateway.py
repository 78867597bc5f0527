"""Traffic split through Gateway API HTTPRoute weights. The HTTPRoute CRD comes from the
sigs.k8s.io/gateway-api Go module's CRD files, downloaded through the Go module proxy at test time
(never committed), and is removed again afterwards so other tests see a cluster without it."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.cluster.conftest import Operator, kube_json, kubectl, wait_for
from tests.cluster.test_operator import apply, manifest, phase_is

GATEWAY_API = "sigs.k8s.io/gateway-api@v1.6.3"
CRD = "httproutes.gateway.networking.k8s.io"


@pytest.fixture
def httproute_crd(cluster: Path) -> Iterator[None]:
    download = subprocess.run(
        ["go", "mod", "download", "-json", GATEWAY_API], capture_output=True, text=True, timeout=300
    )
    assert download.returncode == 0, download.stderr
    module = Path(json.loads(download.stdout)["Dir"])
    kubectl(
        "wait", "--for=delete", f"crd/{CRD}", "--timeout=120s", check=False, timeout=150
    )  # an earlier run's
    kubectl(
        "apply",
        "--server-side",
        "-f",
        str(module / "config/crd/standard/gateway.networking.k8s.io_httproutes.yaml"),
    )
    kubectl("wait", "--for=condition=Established", f"crd/{CRD}", "--timeout=60s")
    yield
    kubectl("delete", "crd", CRD, "--wait=true", check=False, timeout=120)


def route_weights(namespace: str) -> dict[str, int]:
    route = kube_json("get", "httproute", "iris-model", "-n", namespace)
    return {b["name"]: b["weight"] for b in route["spec"]["rules"][0]["backendRefs"]}


def test_httproute_weights_follow_the_canary(httproute_crd: None, operator: Operator, namespace: str) -> None:
    canary: dict[str, Any] = {
        "steps": [10, 50],
        "interval": "10m",
        "traffic": "gatewayAPI",
        "analysis": {"interval": "1s", "noData": "pass"},
    }
    apply(namespace, manifest(serve={"canary": canary, "gatewayRef": {"name": "public"}}))
    v1 = wait_for("stable", lambda: phase_is(namespace, "Serving"), timeout=180)["run"]["id"]
    route = kube_json("get", "httproute", "iris-model", "-n", namespace)
    assert route["spec"]["parentRefs"][0]["name"] == "public"
    assert route_weights(namespace) == {f"iris-model-{v1}": 100}
    kubectl("annotate", "-n", namespace, "mlpipeline/iris", "mlpipeline.dev/rerun=2")
    v2 = wait_for("the canary", lambda: phase_is(namespace, "Canary"), timeout=180)["run"]["id"]
    wait_for(
        "10% to the canary",
        lambda: route_weights(namespace) == {f"iris-model-{v1}": 90, f"iris-model-{v2}": 10},
        timeout=30,
    )
    kubectl("annotate", "-n", namespace, "mlpipeline/iris", "mlpipeline.dev/canary=promote")
    promoted = wait_for(
        "promoted", lambda: (s := phase_is(namespace, "Serving")) and s["serving"]["stable"] == v2 and s
    )
    assert "promoted by the mlpipeline.dev/canary annotation" in promoted["serving"]["message"]
    wait_for(
        "all traffic to the new version",
        lambda: route_weights(namespace) == {f"iris-model-{v2}": 100},
        timeout=30,
    )
