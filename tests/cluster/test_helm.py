"""The Helm chart installs into the real control plane; kwok runs the operator pod as a stand-in
(its process is not started: no container runtime exists here, the operator itself is tested as a
local process in test_operator.py)."""

from __future__ import annotations

import json
import os
import subprocess
import uuid
from pathlib import Path

from mlpipeline.kube.rbac import FORBIDDEN, NAMESPACED, Permission

from tests.cluster.conftest import KUBECONFIG, kube_json, kubectl, wait_for
from tests.conftest import ROOT

HELM = (
    Path(os.environ.get("MLP_CACHE", Path.home() / ".cache" / "mlpipeline")) / "bin" / "helm-v3.21.4" / "helm"
)
CHART = ROOT / "charts" / "mlpipeline-operator"


def helm(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [str(HELM), "--kubeconfig", str(KUBECONFIG), *args], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0 or not check, result.stderr
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
        "--set",
        "nodeSelector.type=kwok",
        "--wait=false",
    )
    try:
        deployment = kube_json("get", "deployment", "mlp", "-n", namespace)
        container = deployment["spec"]["template"]["spec"]["containers"][0]
        assert container["image"] == "ghcr.io/mlpipeline/mlpipeline:test"
        assert container["command"] == ["mlpipeline", "operator"]
        env = {e["name"]: e["value"] for e in container["env"]}
        assert env["MLP_STEP_IMAGE"] == "ghcr.io/mlpipeline/mlpipeline:test"
        sa = f"system:serviceaccount:{namespace}:mlp"
        all_granted(sa, "default", NAMESPACED)  # every request the operator makes, in any namespace
        assert granted(sa, "default", FORBIDDEN) == []  # it never changes what users declared
        wait_for(
            "the operator pod scheduled and running",
            lambda: any(
                p["status"].get("phase") == "Running"
                for p in kube_json("get", "pods", "-n", namespace)["items"]
            ),
            timeout=60,
        )
        helm(
            "upgrade",
            "mlp",
            str(CHART),
            "-n",
            namespace,
            "--set",
            "image.tag=test2",
            "--set",
            "logLevel=DEBUG",
        )
        container = kube_json("get", "deployment", "mlp", "-n", namespace)["spec"]["template"]["spec"][
            "containers"
        ][0]
        assert container["image"].endswith(":test2")
        helm("uninstall", "mlp", "-n", namespace)
        assert kubectl("get", "clusterrole", "mlp", check=False).returncode != 0
        kubectl("get", "crd", "mlpipelines.mlpipeline.dev")  # Helm keeps CRDs on uninstall
        kubectl("delete", "namespace", namespace, "--wait=false")
    finally:
        helm("uninstall", "mlp", "-n", namespace, check=False)
        kubectl("delete", "namespace", namespace, "--wait=false", check=False)


def can_i(account: str, namespace: str, permission: Permission) -> bool:
    """Asks the API server's authorizer (a SubjectAccessReview) as the ServiceAccount would."""
    resource, _, subresource = permission.resource.partition("/")
    review = {
        "apiVersion": "authorization.k8s.io/v1",
        "kind": "SubjectAccessReview",
        "spec": {
            "user": account,
            "groups": ["system:serviceaccounts", "system:authenticated"],
            "resourceAttributes": {
                "namespace": namespace,
                "verb": permission.verb,
                "group": permission.group,
                "resource": resource,
                "subresource": subresource,
            },
        },
    }
    answer = kubectl("create", "-o", "json", "-f", "-", stdin=json.dumps(review))
    return bool(json.loads(answer.stdout)["status"].get("allowed"))


def denied(account: str, namespace: str, permissions: list[Permission]) -> list[Permission]:
    return [p for p in permissions if not can_i(account, namespace, p)]


def granted(account: str, namespace: str, permissions: list[Permission]) -> list[Permission]:
    return [p for p in permissions if can_i(account, namespace, p)]


def all_granted(account: str, namespace: str, permissions: list[Permission]) -> None:
    """The authorizer sees a new binding after its informer does: wait for it, briefly."""
    wait_for(f"{account} granted", lambda: denied(account, namespace, permissions) == [], timeout=30)


def test_a_namespaced_install_grants_the_operator_its_namespace_only(cluster: Path) -> None:
    suffix = uuid.uuid4().hex[:6]
    system, watched, other = f"mlp-system-{suffix}", f"ml-{suffix}", f"other-{suffix}"
    for name in (watched, other):
        kubectl("create", "namespace", name)
    helm(
        "install", "mlp", str(CHART), "-n", system, "--create-namespace",
        "--set", f"watchNamespace={watched}", "--set", "nodeSelector.type=kwok", "--wait=false",
    )  # fmt: skip
    sa = f"system:serviceaccount:{system}:mlp"
    try:
        all_granted(sa, watched, NAMESPACED)
        assert granted(sa, other, NAMESPACED) == []
        assert granted(sa, watched, FORBIDDEN) == []
        deployment = kube_json("get", "deployment", "mlp", "-n", system)
        assert deployment["spec"]["template"]["spec"]["containers"][0]["args"] == ["--namespace", watched]
        assert kubectl("get", "clusterrole", "mlp", check=False).returncode != 0  # nothing cluster-wide
    finally:
        helm("uninstall", "mlp", "-n", system, check=False)
        for name in (system, watched, other):
            kubectl("delete", "namespace", name, "--wait=false", check=False)
