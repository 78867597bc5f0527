"""The Helm chart installs into the real control plane; kwok runs the operator pod as a stand-in
(its process is not started: no container runtime exists here, the operator itself is tested as a
local process in test_operator.py)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import uuid
from pathlib import Path

import yaml
from mlpipeline.kube.rbac import FORBIDDEN, LEADER_ELECTION, NAMESPACED, Permission
from mlpipeline.local.server import free_port

from tests.cluster.conftest import KUBECONFIG, Operator, delete_namespace, kube_json, kubectl, wait_for
from tests.conftest import ROOT

HELM = (
    Path(os.environ.get("MLP_CACHE", Path.home() / ".cache" / "mlpipeline")) / "bin" / "helm-v3.21.4" / "helm"
)
CHART = ROOT / "charts" / "mlpipeline-operator"
SERVICE_MONITOR_CRD = (
    Path(os.environ.get("MLP_CACHE", Path.home() / ".cache" / "mlpipeline"))
    / "crds"
    / "prometheus-operator-v0.85.0"
    / "servicemonitors.yaml"
)


def helm(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [str(HELM), "--kubeconfig", str(KUBECONFIG), *args], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0 or not check, result.stderr
    return result


def test_chart_installs_upgrades_and_uninstalls(cluster: Path) -> None:
    namespace = f"mlp-system-{uuid.uuid4().hex[:6]}"
    helm("lint", "--strict", str(CHART))
    installed = helm(
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
        assert (
            "kubectl apply --server-side -f crds/mlpipeline.dev_mlpipelines.yaml" in installed.stdout
        )  # NOTES
        deployment = kube_json("get", "deployment", "mlp", "-n", namespace)
        container = deployment["spec"]["template"]["spec"]["containers"][0]
        assert container["image"] == "ghcr.io/mlpipeline/mlpipeline:test"
        assert container["command"] == ["mlpipeline", "operator"]
        env = {e["name"]: e.get("value") for e in container["env"]}
        assert env["MLP_STEP_IMAGE"] == "ghcr.io/mlpipeline/mlpipeline:test"
        sa = f"system:serviceaccount:{namespace}:mlp"
        all_granted(sa, "default", NAMESPACED)  # every request the operator makes, in any namespace
        assert granted(sa, "default", FORBIDDEN) == []  # it never changes what users declared
        assert env["MLP_LEADER_ELECTION"] == "true"
        all_granted(sa, namespace, LEADER_ELECTION)  # its Lease, in its own namespace only
        assert granted(sa, "default", LEADER_ELECTION) == []
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
        delete_namespace(namespace)


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


def kubeconfig_of(namespace: str, service_account: str, path: Path) -> Path:
    """A kubeconfig that authenticates as the service account (a token from the TokenRequest API)."""
    token = kubectl("create", "token", service_account, "-n", namespace).stdout.strip()
    config = yaml.safe_load(KUBECONFIG.read_text())
    context = next(c for c in config["contexts"] if c["name"] == config["current-context"])
    cluster = next(c for c in config["clusters"] if c["name"] == context["context"]["cluster"])
    config["users"] = [{"name": service_account, "user": {"token": token}}]
    config["contexts"] = [{"name": "sa", "context": {"cluster": cluster["name"], "user": service_account}}]
    config["clusters"], config["current-context"] = [cluster], "sa"
    path.write_text(yaml.safe_dump(config))
    return path


def test_a_namespaced_install_grants_the_operator_its_namespace_only(cluster: Path, tmp_path: Path) -> None:
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

        # Pointed at a namespace its RBAC does not cover, the operator exits and says why (its pod
        # restarts, visibly) instead of living on without its watches.
        misplaced = Operator(
            log=tmp_path / "operator.log",
            metrics_port=free_port(),
            namespaces=other,
            env={"KUBECONFIG": str(kubeconfig_of(system, "mlp", tmp_path / "kubeconfig"))},
        )
        misplaced.start()
        try:
            code = wait_for("the operator to exit", misplaced.exited, timeout=150, interval=2)
        finally:
            misplaced.stop()
        assert code == 1
        said = misplaced.log.read_text()
        resource = '"(mlpipelines|jobs|pods|rayjobs)" in API group "[a-z.]*"'
        assert re.search(f'cannot list resource {resource} in the namespace "{other}"', said), said[-3000:]
    finally:
        helm("uninstall", "mlp", "-n", system, check=False)
        for name in (system, watched, other):
            delete_namespace(name)


def test_a_wrong_value_fails_the_install_with_its_name(cluster: Path) -> None:
    namespace = f"mlp-bad-{uuid.uuid4().hex[:6]}"
    for values, expected in (
        (["--set", "replicas=two"], "at '/replicas': got string, want integer"),
        (["--set", "metrics.serviceMonitor.enabled=yes"], "at '/metrics/serviceMonitor/enabled'"),
        (["--set", "replica=2"], "additional properties 'replica' not allowed"),
        (["--set", "artifactsUri=file:///tmp"], "at '/artifactsUri'"),
    ):
        failed = helm(
            "install", "mlp", str(CHART), "-n", namespace, "--create-namespace", *values, check=False
        )
        assert failed.returncode != 0 and expected in failed.stderr, failed.stderr
    assert kubectl("get", "namespace", namespace, check=False).returncode != 0  # nothing was created


def test_the_service_monitor_selects_the_operators_metrics_service(cluster: Path) -> None:
    """With the ServiceMonitor CRD of the Prometheus Operator (from its Go module, make control-plane)."""
    kubectl("apply", "--server-side", "-f", str(SERVICE_MONITOR_CRD), timeout=120)
    wait_for(
        "the ServiceMonitor CRD established",
        lambda: kubectl("get", "servicemonitors", "-A", check=False).returncode == 0,
        timeout=60,
    )
    namespace = f"mlp-system-{uuid.uuid4().hex[:6]}"
    helm(
        "install", "mlp", str(CHART), "-n", namespace, "--create-namespace",
        "--set", "nodeSelector.type=kwok", "--set", "metrics.serviceMonitor.enabled=true",
        "--set", "metrics.serviceMonitor.labels.release=prom", "--set", "metrics.serviceMonitor.interval=15s",
        "--wait=false",
    )  # fmt: skip
    try:
        monitor = kube_json("get", "servicemonitor", "mlp", "-n", namespace)
        assert monitor["metadata"]["labels"]["release"] == "prom"
        (endpoint,) = monitor["spec"]["endpoints"]
        assert endpoint == {"port": "metrics", "path": "/metrics", "interval": "15s"}
        selector = ",".join(f"{k}={v}" for k, v in monitor["spec"]["selector"]["matchLabels"].items())
        (service,) = kube_json("get", "services", "-n", namespace, "-l", selector)["items"]
        assert service["metadata"]["name"] == "mlp-metrics"
        assert [p["name"] for p in service["spec"]["ports"]] == ["metrics"]
    finally:
        helm("uninstall", "mlp", "-n", namespace, check=False)
        delete_namespace(namespace)
