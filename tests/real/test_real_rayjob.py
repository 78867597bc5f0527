"""spec.train.distributed with real Ray pods: KubeRay (built from its Go module, run as a process)
turns the tune step's RayJob into a RayCluster whose head and worker are real pods of the image
built here on the real node; the worker finds its head through the cluster DNS (CoreDNS, started by
hack/node.sh) as KubeRay addresses it only by name; the trials run on the worker, their results and
the best configuration land in the S3 store, and the pipeline goes on to evaluate and package."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.cluster.conftest import KUBECONFIG, Operator, kube_json, wait_for
from tests.kuberay import running_kuberay
from tests.real.conftest import REAL_NODE, S3Store, failing_fast, kubectl, real_manifest, status_of

CLUSTER_LABEL = "ray.io/cluster"
NODE_TYPE_LABEL = "ray.io/node-type"


def test_a_rayjob_tunes_on_real_ray_pods_and_the_pipeline_packages_its_best(
    real_operator: Operator, s3_store: S3Store, tmp_path: Path
) -> None:
    namespace = s3_store.namespace
    document = real_manifest(s3_store)
    spec = document["spec"]
    spec["train"]["tune"] |= {"trials": 4, "maxConcurrent": 2}
    spec["train"]["distributed"] = {"workers": 1, "trialsPerWorker": 2, "when": "Always", "ttl": "10m"}
    spec["serve"] = {"enabled": False}
    seen: dict[str, dict[str, Any]] = {}  # Ray pods: their node, type and the phases they went through

    def finished() -> dict[str, Any] | None:
        for pod in kube_json("get", "pods", "-n", namespace, "-l", CLUSTER_LABEL)["items"]:
            record = seen.setdefault(
                pod["metadata"]["name"],
                {"type": pod["metadata"]["labels"].get(NODE_TYPE_LABEL), "phases": set()},
            )
            record["node"] = pod["spec"].get("nodeName")
            record["phases"].add(pod["status"].get("phase"))
        status = failing_fast(status_of(namespace))
        return status if status.get("phase") == "Packaged" else None

    with running_kuberay(KUBECONFIG, tmp_path):
        kubectl("apply", "-n", namespace, "-f", "-", stdin=json.dumps(document))
        status = wait_for("the pipeline tuned on Ray and packaged", finished, timeout=600, interval=2)
        rayjobs = kube_json("get", "rayjobs", "-n", namespace)["items"]
    assert status["phase"] == "Packaged", status.get("message")
    assert [r["status"]["jobDeploymentStatus"] for r in rayjobs] == ["Complete"]
    assert rayjobs[0]["status"].get("jobStatus") == "SUCCEEDED"
    ran = {p["type"] for p in seen.values() if "Running" in p["phases"] and p["node"] == REAL_NODE}
    assert ran == {"head", "worker"}, seen
    fs = s3_store.fs()
    tune_outputs = fs.glob(f"{s3_store.prefix}/**/steps/tune-*/trials.json")  # keyed by content
    [tune_out] = [path.rsplit("/", 1)[0] for path in tune_outputs]
    trials = json.loads(fs.cat(f"{tune_out}/trials.json"))
    assert len(trials) == 4 and all("error" not in t and t["folds"] == 3 for t in trials), trials
    result = json.loads(fs.cat(f"{tune_out}/result.json"))
    assert result["ok"] and result["executor"] == "ray"  # not inline: the trials went to the worker
    assert fs.glob(f"{tune_out}/ray/tune/*/result.json")  # written by the trials on the worker
    best = json.loads(fs.cat(f"{tune_out}/best.json"))
    assert best["config"] in [t["config"] for t in trials]
    assert status["model"]["version"] == status["run"]["id"]
