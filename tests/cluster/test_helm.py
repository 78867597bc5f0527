"""The Helm chart installs into the real control plane; kwok runs the operator pod as a stand-in
(its process is not started: no container runtime exists here, the operator itself is tested as a
local process in test_operator.py)."""

from __future__ import annotations

import os
import subprocess
import uuid
from pathlib import Path

from tests.cluster.conftest import KUBECONFIG, kube_json, kubectl, wait_for
from tests.conftest import ROOT

HELM = (
    Path(os.environ.get("MLP_CACHE", Path.home() / ".cache" / "mlpipeline")) / "bin" / "helm-v3.21.4" / "helm"
)
CHART = ROOT / "charts" / "mlpipeline-operator"


def helm(*args: str) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [str(HELM), "--kubeconfig", str(KUBECONFIG), *args], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    return result


def test_chart_installs_upgrades_and_uninstalls(cluster: Path) -> None:
    namespace = f"mlp-system-{uuid.uuid4().hex[:6]}"
    helm("lint", str(CHART))
    helm(
        "install",
        "mlp",
        str(CHART),
        "-n",
        namespace,
        "--create-namespace",
        "--set",
        "image.tag=test",
        "--wait=false",
    )
    deployment = kube_json("get", "deployment", "mlp", "-n", namespace)
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == "ghcr.io/mlpipeline/mlpipeline:test"
    assert container["command"] == ["mlpipeline", "operator"]
    env = {e["name"]: e["value"] for e in container["env"]}
    assert env["MLP_STEP_IMAGE"] == "ghcr.io/mlpipeline/mlpipeline:test"
    role = kube_json("get", "clusterrole", "mlp")
    granted = {(g, r) for rule in role["rules"] for g in rule["apiGroups"] for r in rule["resources"]}
    assert {("mlpipeline.dev", "mlpipelines/status"), ("batch", "jobs"), ("", "events")} <= granted
    sa = f"system:serviceaccount:{namespace}:mlp"
    can = kubectl("auth", "can-i", "create", "jobs", "--as", sa, "-n", "default", check=False)
    assert can.stdout.strip() == "yes"
    cannot = kubectl("auth", "can-i", "delete", "mlpipelines.mlpipeline.dev", "--as", sa, check=False)
    assert cannot.stdout.strip() == "no"  # the operator never changes what users declared
    wait_for(
        "the operator pod scheduled and running",
        lambda: any(
            p["status"].get("phase") == "Running" for p in kube_json("get", "pods", "-n", namespace)["items"]
        ),
        timeout=60,
    )
    helm("upgrade", "mlp", str(CHART), "-n", namespace, "--set", "image.tag=test2", "--set", "logLevel=DEBUG")
    container = kube_json("get", "deployment", "mlp", "-n", namespace)["spec"]["template"]["spec"][
        "containers"
    ][0]
    assert container["image"].endswith(":test2")
    helm("uninstall", "mlp", "-n", namespace)
    assert kubectl("get", "clusterrole", "mlp", check=False).returncode != 0
    kubectl("get", "crd", "mlpipelines.mlpipeline.dev")  # Helm keeps CRDs on uninstall
    kubectl("delete", "namespace", namespace, "--wait=false")
