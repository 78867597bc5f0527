"""The tune step as a KubeRay RayJob: what is built from the spec, and how its status is read."""

from __future__ import annotations

import shlex
import time
from dataclasses import dataclass, field
from typing import Any

import pytest
from mlpipeline.api.manifest import load_manifest
from mlpipeline.api.models import DistributedSpec, MLPipelineSpec, MLPipelineStatus
from mlpipeline.controller.cache import ClusterCache
from mlpipeline.controller.reconciler import Reconciler
from mlpipeline.engine.reconcile import Decision
from mlpipeline.kube import rayjob as rayjob_module
from mlpipeline.kube.jobs import KUBERAY_PEER, OperatorSettings, build_step_job
from mlpipeline.kube.rayjob import build_ray_network_policy, build_tune_rayjob, is_active, observe_rayjob

from tests.conftest import EXAMPLES
from tests.unit.test_status_patch import BODY, Answering

SETTINGS = OperatorSettings(image="registry.local/mlp:1", artifacts_uri="s3://bucket/mlp")


def spec(gpu: float = 0, queue: str | None = None, **distributed: Any) -> MLPipelineSpec:
    loaded = load_manifest(EXAMPLES / "iris.yaml").spec
    loaded.train.resources = loaded.train.resources.model_copy(update={"gpu": gpu, "cpu": "500m"})
    loaded.train.queue = queue
    loaded.train.distributed = DistributedSpec(**distributed)
    return loaded


def build(s: MLPipelineSpec) -> dict[str, Any]:
    return build_tune_rayjob(pipeline="iris", namespace="ml", uid="u-1", spec=s, run="r1", settings=SETTINGS)


def test_the_rayjob_runs_the_tune_step_a_job_would_run() -> None:
    s = spec(workers=3)
    rayjob = build(s)
    job = build_step_job(
        pipeline="iris", namespace="ml", uid="u-1", spec=s, run="r1", step="tune", settings=SETTINGS
    )
    step = job["spec"]["template"]["spec"]["containers"][0]
    assert rayjob["apiVersion"] == "ray.io/v1" and rayjob["kind"] == "RayJob"
    assert rayjob["metadata"] == job["metadata"]  # name, labels (run, step), owner: found like the Job
    assert shlex.split(rayjob["spec"]["entrypoint"]) == [*step["command"], *step["args"]]
    assert rayjob["spec"]["shutdownAfterJobFinishes"] is True
    assert rayjob["spec"]["ttlSecondsAfterFinished"] == 300
    assert rayjob["spec"]["activeDeadlineSeconds"] == job["spec"]["activeDeadlineSeconds"]
    cluster = rayjob["spec"]["rayClusterSpec"]
    head = cluster["headGroupSpec"]
    assert head["rayStartParams"]["num-cpus"] == "0"  # the driver only: trials go to the workers
    (group,) = cluster["workerGroupSpecs"]
    assert group["replicas"] == group["minReplicas"] == group["maxReplicas"] == 3
    for pod in (head["template"], group["template"]):
        container = pod["spec"]["containers"][0]
        assert container["image"] == "registry.local/mlp:1" and "command" not in container
        assert {e["name"] for e in container["env"]} >= {"MLPIPELINE_SPEC", "RAY_USAGE_STATS_ENABLED"}
        assert pod["spec"]["securityContext"]["runAsNonRoot"] is True
        assert "restartPolicy" not in pod["spec"]


def test_workers_are_sized_for_their_trials_and_land_on_gpu_nodes() -> None:
    rayjob = build(spec(gpu=0.5, workers=2, trials_per_worker=3, queue="team-a"))
    (group,) = rayjob["spec"]["rayClusterSpec"]["workerGroupSpecs"]
    worker = group["template"]["spec"]
    resources = worker["containers"][0]["resources"]
    assert resources["requests"]["cpu"] == "1500m" and group["rayStartParams"]["num-cpus"] == "2"
    assert resources["limits"]["nvidia.com/gpu"] == "2"  # 3 trials x 0.5 GPU, whole devices
    assert worker["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
    assert any(t["key"] == "nvidia.com/gpu" for t in worker["tolerations"])
    head = rayjob["spec"]["rayClusterSpec"]["headGroupSpec"]["template"]["spec"]
    assert "nodeSelector" not in head and "nvidia.com/gpu" not in head["containers"][0]["resources"]["limits"]
    assert rayjob["metadata"]["labels"]["kueue.x-k8s.io/queue-name"] == "team-a"


def rayjob_with(status: dict[str, Any]) -> dict[str, Any]:
    return {
        "kind": "RayJob",
        "metadata": {"name": "iris-r1-tune", "labels": {"mlpipeline.dev/run": "r1"}},
        "status": status,
    }


@pytest.mark.parametrize(
    ("deployment", "job_status", "outcome"),
    [
        ("Initializing", "", "active"),
        ("Running", "RUNNING", "active"),
        ("Running", "SUCCEEDED", "active"),  # jobStatus ahead of the deployment: not done yet
        ("Complete", "RUNNING", "succeeded"),  # the deployment's verdict counts (kuberay#2314)
        ("Failed", "SUCCEEDED", "failed"),
        ("Suspended", "", "waiting"),
    ],
)
def test_the_rayjob_is_read_by_its_deployment_status(deployment: str, job_status: str, outcome: str) -> None:
    seen = observe_rayjob(rayjob_with({"jobDeploymentStatus": deployment, "jobStatus": job_status}), [])
    assert seen.run == "r1"
    assert (seen.active, seen.succeeded, seen.failed) == {
        "active": (1, 0, 0),
        "succeeded": (0, 1, 0),
        "failed": (0, 0, 1),
        "waiting": (0, 0, 0),
    }[outcome]
    assert is_active(rayjob_with({"jobDeploymentStatus": deployment})) == (outcome in ("active", "waiting"))


def test_a_failed_rayjob_says_why_and_a_stuck_worker_is_a_pod_problem() -> None:
    failed = observe_rayjob(
        rayjob_with(
            {"jobDeploymentStatus": "Failed", "reason": "DeadlineExceeded", "message": "past 7200 s"}
        ),
        [],
    )
    assert failed.failed_reason == "DeadlineExceeded" and failed.failed_message == "past 7200 s"
    pending = {
        "metadata": {
            "name": "w",
            "creationTimestamp": "2026-11-26T10:00:00Z",
            "labels": {"ray.io/cluster": "iris-r1-tune-x7k2p"},
        },
        "status": {
            "phase": "Pending",
            "conditions": [
                {
                    "type": "PodScheduled",
                    "status": "False",
                    "reason": "Unschedulable",
                    "message": "0/3 nodes: GPU",
                }
            ],
        },
    }
    other = {**pending, "metadata": {**pending["metadata"], "labels": {"ray.io/cluster": "another-job"}}}
    running = observe_rayjob(rayjob_with({"jobDeploymentStatus": "Running"}), [pending])
    assert running.pod_problem == "Unschedulable: 0/3 nodes: GPU" and running.pending_since is not None
    assert observe_rayjob(rayjob_with({"jobDeploymentStatus": "Running"}), [other]).pod_problem is None


def test_the_submitter_and_a_gpu_run_s_head_are_placed_like_the_operator_s_other_pods() -> None:
    """KubeRay's default submitter has no placement and no security context: a namespace enforcing
    the restricted Pod Security Standard would refuse it, and it could land outside the pool that
    MLP_POD_NODE_SELECTOR names."""
    settings = OperatorSettings(image="registry.local/mlp:1", node_selector={"pool": "ml"})
    rayjob = build_tune_rayjob(
        pipeline="iris", namespace="ml", uid="u-1", spec=spec(gpu=1, workers=1), run="r1", settings=settings
    )
    submitter = rayjob["spec"]["submitterPodTemplate"]
    container = submitter["spec"]["containers"][0]
    assert container["image"] == "registry.local/mlp:1" and "command" not in container  # KubeRay's command
    assert submitter["spec"]["nodeSelector"] == {"pool": "ml"} and "tolerations" not in submitter["spec"]
    assert submitter["spec"]["securityContext"]["runAsNonRoot"] is True
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert submitter["metadata"]["labels"]["mlpipeline.dev/pipeline"] == "iris"
    head = rayjob["spec"]["rayClusterSpec"]["headGroupSpec"]["template"]["spec"]
    worker = rayjob["spec"]["rayClusterSpec"]["workerGroupSpecs"][0]["template"]["spec"]
    assert head["nodeSelector"] == {"pool": "ml"} and "tolerations" not in head
    assert worker["nodeSelector"]["pool"] == "ml" and worker["tolerations"]


@dataclass
class Pod:
    namespace: str
    labels: dict[str, str] = field(default_factory=dict)


def matches(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in selector.get("matchLabels", {}).items())


def admits(policies: list[dict[str, Any]], source: Pod, target: Pod, port: int) -> bool:
    """Whether Kubernetes lets ``source`` open a TCP connection to ``port`` of ``target`` under
    ``policies`` (the NetworkPolicy semantics for matchLabels selectors): a pod no policy selects
    takes any ingress; a selected one only what a rule of a policy selecting it allows."""
    selecting = [
        p
        for p in policies
        if p["metadata"]["namespace"] == target.namespace
        and matches(p["spec"]["podSelector"], target.labels)
        and "Ingress" in p["spec"]["policyTypes"]
    ]
    if not selecting:
        return True
    source_namespace = {"kubernetes.io/metadata.name": source.namespace}
    for policy in selecting:
        for rule in policy["spec"].get("ingress", []):
            ports = rule.get("ports")
            if ports and not any(p["port"] == port and p.get("protocol", "TCP") == "TCP" for p in ports):
                continue
            for peer in rule.get("from", []):
                namespaces = peer.get("namespaceSelector")
                in_namespace = (
                    source.namespace == policy["metadata"]["namespace"]
                    if namespaces is None
                    else matches(namespaces, source_namespace)
                )
                if in_namespace and matches(peer.get("podSelector", {}), source.labels):
                    return True
    return False


def ray_pods(rayjob: dict[str, Any]) -> tuple[Pod, Pod, Pod]:
    """The head, a worker and the submitter as KubeRay makes them: the templates' labels and its own."""
    cluster = rayjob["spec"]["rayClusterSpec"]
    kuberay = {"ray.io/cluster": f"{rayjob['metadata']['name']}-x7k2p", "ray.io/is-ray-node": "yes"}
    head = Pod("ml", {**cluster["headGroupSpec"]["template"]["metadata"]["labels"], **kuberay})
    worker = Pod("ml", {**cluster["workerGroupSpecs"][0]["template"]["metadata"]["labels"], **kuberay})
    submitter = Pod("ml", dict(rayjob["spec"]["submitterPodTemplate"]["metadata"]["labels"]))
    return head, worker, submitter


HEAD_PORTS = (8265, 6379, 10001, 10002, 52365)  # dashboard, GCS, client, a worker port, the agent


def test_only_the_ray_cluster_s_own_pods_and_kuberay_reach_its_head() -> None:
    """Without the policy, any pod of the cluster could submit code to the head (the Jobs API on
    8265, or the client on 10001) that runs with the pipeline's store credentials."""
    rayjob = build(spec(workers=2))
    policies = [build_ray_network_policy(rayjob, [KUBERAY_PEER])]
    head, worker, submitter = ray_pods(rayjob)
    for port in HEAD_PORTS:
        assert admits(policies, worker, head, port) and admits(policies, head, worker, port)
    assert admits(policies, submitter, head, 8265)
    kuberay = Pod("kuberay-system", {"app.kubernetes.io/name": "kuberay-operator"})
    assert admits(policies, kuberay, head, 8265)
    assert not any(admits(policies, kuberay, head, port) for port in HEAD_PORTS if port != 8265)
    other_run = build_tune_rayjob(
        pipeline="iris", namespace="ml", uid="u-1", spec=spec(workers=2), run="r2", settings=SETTINGS
    )
    intruders = [
        Pod("team-b", {}),  # another team's namespace
        Pod("team-b", dict(head.labels)),  # ... even labelled like the head's pods
        Pod("ml", {"app": "notebook"}),  # any other pod of the namespace
        ray_pods(other_run)[1],  # a worker of another run's cluster
        Pod("kube-system", {}),
    ]
    for intruder in intruders:
        for target in (head, worker):
            assert not any(admits(policies, intruder, target, port) for port in HEAD_PORTS), intruder


def test_the_policy_is_named_and_owned_like_its_rayjob() -> None:
    rayjob = build(spec(workers=1))
    policy = build_ray_network_policy(rayjob, [])
    assert policy["apiVersion"] == "networking.k8s.io/v1" and policy["kind"] == "NetworkPolicy"
    assert policy["metadata"]["name"] == rayjob["metadata"]["name"]
    assert policy["metadata"]["ownerReferences"] == rayjob["metadata"]["ownerReferences"]
    head, _, _ = ray_pods(rayjob)
    kuberay = Pod("kuberay-system", {})
    assert not admits([policy], kuberay, head, 8265)  # no peers given: its own pods only


def test_the_chart_s_network_policy_values_reach_the_operator_by_env(monkeypatch: pytest.MonkeyPatch) -> None:
    from mlpipeline.controller.handlers import settings_from_env

    monkeypatch.delenv("MLP_NETWORK_POLICIES", raising=False)
    monkeypatch.delenv("MLP_RAY_DASHBOARD_PEERS", raising=False)
    defaults = settings_from_env()  # no chart: KubeRay's usual namespace
    assert defaults.network_policies is True and defaults.ray_dashboard_peers == (KUBERAY_PEER,)
    monkeypatch.setenv("MLP_NETWORK_POLICIES", "false")
    monkeypatch.setenv("MLP_RAY_DASHBOARD_PEERS", '[{"ipBlock": {"cidr": "10.0.0.0/8"}}]')
    settings = settings_from_env()
    assert settings.network_policies is False
    assert settings.ray_dashboard_peers == ({"ipBlock": {"cidr": "10.0.0.0/8"}},)
    monkeypatch.setenv("MLP_RAY_DASHBOARD_PEERS", "[]")  # the Ray cluster's own pods only
    assert settings_from_env().ray_dashboard_peers == ()
    monkeypatch.setenv("MLP_RAY_DASHBOARD_PEERS", '{"namespaceSelector": {}}')
    with pytest.raises(ValueError, match="NetworkPolicy peers"):
        settings_from_env()


@pytest.mark.parametrize(("ray", "auth"), [("2.60.0", True), ("2.52.0", True), ("2.51.1", False)])
def test_ray_token_authentication_is_asked_of_kuberay_when_ray_has_it(
    ray: str, auth: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """KubeRay (v1.5.1 on) then creates the token's Secret and gives it to every Ray container and
    the submitter; the operator itself never touches a Secret."""
    monkeypatch.setattr(rayjob_module, "_ray_version", lambda: ray)
    cluster = build(spec(workers=1))["spec"]["rayClusterSpec"]
    assert cluster["rayVersion"] == ray
    assert ("authOptions" in cluster) is auth
    if auth:
        assert cluster["authOptions"] == {"mode": "token"}


def ray_reconciler(kube: Answering, settings: OperatorSettings) -> Reconciler:
    reconciling = Reconciler(kube, settings, ClusterCache())
    reconciling.kuberay_seen = (True, time.monotonic())
    reconciling.wake_later = lambda *args: None  # type: ignore[method-assign]
    return reconciling


@pytest.mark.parametrize("enabled", [True, False])
def test_the_operator_creates_the_policy_before_the_rayjob_and_deletes_it_with_it(enabled: bool) -> None:
    kube = Answering()
    settings = OperatorSettings(artifacts_uri="s3://b/a", network_policies=enabled)
    reconciling = ray_reconciler(kube, settings)
    s = spec(workers=1)
    old = MLPipelineStatus.model_validate(BODY["status"])
    decision = Decision(status=MLPipelineStatus(phase="Tuning"), create=["tune"], delete=["iris-r0-tune"])
    assert reconciling._apply(BODY, s, "r1", decision, old, dict(BODY["status"]))
    posts = [(path, body) for method, path, body in kube.requests if method == "POST"]
    created = [(path.rsplit("/", 1)[-1], body["metadata"]["name"]) for path, body in posts]
    expected = [("networkpolicies", "iris-r1-tune")] if enabled else []
    assert created == [*expected, ("rayjobs", "iris-r1-tune")]
    deleted = [path for m, path, _ in kube.requests if m == "DELETE"]
    assert deleted == [
        "/apis/ray.io/v1/namespaces/team-a/rayjobs/iris-r0-tune",
        "/apis/networking.k8s.io/v1/namespaces/team-a/networkpolicies/iris-r0-tune",
    ]
