"""A pipeline trained and served by real pods on the real node, its data and artifacts in the S3
store (SeaweedFS) with the credentials of a Secret; then new versions rolled out as canaries whose
analysis reads what a real Prometheus (Debian's, discovering the model pods through the API server)
scraped from them: a healthy version is promoted, a faulty one rolled back. No check may pass for
want of data.

The fault is a real one, not an injected error: the third version is trained on data whose labels
setosa and virginica were swapped upstream. It passes its own evaluation gate (it is accurate on its
own, equally swapped, test split) and only the comparison of its live predictions with the stable
version's can catch it."""

from __future__ import annotations

import csv
import io
import random
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import yaml
from mlpipeline.local.load import Load
from mlpipeline.local.prometheus import LocalPrometheus
from mlpipeline.protocol import model_object_name

from tests.cluster.conftest import KUBECONFIG, FailFast, Operator, kube_json, kubectl, wait_for
from tests.conftest import EXAMPLES
from tests.real.conftest import (
    PROMETHEUS,
    PROMETHEUS_PORT,
    REAL_NODE,
    S3Store,
    answered,
    failing_fast,
    logs,
    predict,
    real_manifest,
    run_to_serving,
    service_url,
    status_of,
    wait_ready,
)

# The scrape job platform teams already run for annotated pods (prometheus.io/scrape, port, path),
# with the pods' labels mapped to metric labels: mlpipeline.dev/model-version becomes
# mlpipeline_dev_model_version, the operator's default MLP_PROMETHEUS_VERSION_LABEL.
POD_SCRAPE = """  - job_name: kubernetes-pods
    kubernetes_sd_configs:
      - role: pod
        kubeconfig_file: {kubeconfig}
        namespaces: {{names: [{namespace}]}}
    relabel_configs:
      - source_labels: [__meta_kubernetes_pod_annotation_prometheus_io_scrape]
        regex: "true"
        action: keep
      - source_labels: [__meta_kubernetes_pod_phase]
        regex: Running
        action: keep
      - source_labels: [__meta_kubernetes_pod_ip, __meta_kubernetes_pod_annotation_prometheus_io_port]
        regex: (.+);(\\d+)
        replacement: $1:$2
        target_label: __address__
      - source_labels: [__meta_kubernetes_pod_annotation_prometheus_io_path]
        regex: (.+)
        target_label: __metrics_path__
      - action: labelmap
        regex: __meta_kubernetes_pod_label_(.+)
      - source_labels: [__meta_kubernetes_pod_name]
        target_label: pod
      - source_labels: [__meta_kubernetes_namespace]
        target_label: namespace
"""

SETOSA = {"sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4, "petal_width": 0.2}
VIRGINICA = {"sepal_length": 6.7, "sepal_width": 3.0, "petal_length": 5.2, "petal_width": 2.3}
TRAFFIC = [SETOSA] * 4 + [VIRGINICA]  # a skewed mix: a swap of the two classes shifts it a lot

CANARY = {
    "steps": [50],
    "interval": "30s",
    "traffic": "replicas",
    "analysis": {
        "interval": "10s",
        "window": "30s",
        "minRequests": 20,
        "failureThreshold": 2,
        "maxErrorRate": 0.05,
        "maxLatencyP95": "2s",
        "noData": "hold",
        "noDataDeadline": "4m",
    },
}


@dataclass
class Served:
    store: S3Store
    prometheus: LocalPrometheus
    manifest: dict[str, Any]
    status: dict[str, Any]

    @property
    def namespace(self) -> str:
        return self.store.namespace

    def service_url(self) -> str:
        return service_url(self.namespace)

    def wait_removed(self, version: str, what: str) -> None:
        """Until the version's Deployment and pods are gone: a removed pod drains for a few seconds
        (preStop), answering what the Service may still route to it while its endpoint goes."""
        selector = f"mlpipeline.dev/model-version={version}"
        for kind in ("deployments", "pods"):
            wait_for(
                f"{what}'s {kind} removed",
                lambda kind=kind: not kube_json("get", kind, "-n", self.namespace, "-l", selector)["items"],
                timeout=120,
            )

    def roll_out(self, change: dict[str, Any], what: str) -> dict[str, Any]:
        """Applies a changed spec while a steady mix of requests reaches the pipeline's Service, and
        waits until the new version's canary ends; returns the serving status."""
        before = self.status["run"]["id"]
        spec = self.manifest["spec"]
        spec.update({key: {**spec[key], **value} for key, value in change.items()})
        load = Load(self.service_url(), TRAFFIC, rate=6, threads=3, keepalive=False, max_seconds=900).start()
        try:
            kubectl("apply", "-n", self.namespace, "-f", "-", stdin=yaml.safe_dump(self.manifest))
            run = wait_for(
                f"the run of {what}",
                lambda: (r := (status_of(self.namespace).get("run") or {}).get("id")) != before and r,
                timeout=60,
            )

            def ended() -> dict[str, Any] | None:
                self.status = failing_fast(status_of(self.namespace))
                serving = self.status.get("serving") or {}
                return serving if run in (serving.get("stable"), serving.get("rolledBack")) else None

            return wait_for(f"the canary of {what} decided", ended, timeout=600, interval=3)  # type: ignore[no-any-return]
        finally:
            stats = load.stop()
            assert stats.total > 0


@pytest.fixture(scope="module")
def served(
    real_operator: Operator, s3_store: S3Store, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Served]:
    prometheus = LocalPrometheus(
        tmp_path_factory.mktemp("prometheus"),
        port=PROMETHEUS_PORT,  # the URL the operator was allowed to query
        scrape_interval="2s",
        binary=str(PROMETHEUS[-1]),
        scrape_configs=POD_SCRAPE.format(kubeconfig=KUBECONFIG, namespace=s3_store.namespace),
    ).start()
    manifest = real_manifest(s3_store)
    manifest["spec"]["serve"]["canary"] = {
        **CANARY,
        "analysis": {**CANARY["analysis"], "prometheusUrl": prometheus.url},
    }
    try:
        status = run_to_serving(s3_store.namespace, "the pipeline serving from real pods", manifest)
        yield Served(s3_store, prometheus, manifest, status)
    finally:
        prometheus.stop()


def test_a_pipeline_trains_and_serves_in_real_pods_from_the_s3_store(served: Served) -> None:
    namespace, status = served.namespace, served.status
    pods = kube_json("get", "pods", "-n", namespace, "-l", "mlpipeline.dev/step")["items"]
    assert {p["spec"]["nodeName"] for p in pods} == {REAL_NODE}
    assert all(p["status"]["phase"] == "Succeeded" for p in pods)
    tune_log = logs(namespace, "mlpipeline.dev/step=tune")
    assert "trial" in tune_log.lower(), tune_log[-2000:]
    run = status["run"]["id"]
    fs = served.store.fs()
    assert fs.exists(f"{served.store.prefix}/{namespace}/iris/{run}/package/model.bentomodel")
    assert 0.85 <= status["model"]["score"] <= 1.0  # what the real evaluate pod measured on the test split

    wait_ready(namespace, model_object_name("iris", run), "the model Deployment Ready through its probes")
    model_pod = kube_json("get", "pods", "-n", namespace, "-l", "app.kubernetes.io/component=serving")[
        "items"
    ][0]
    assert model_pod["spec"]["nodeName"] == REAL_NODE
    security = model_pod["spec"]["containers"][0]["securityContext"]
    assert security["allowPrivilegeEscalation"] is False and security["capabilities"]["drop"] == ["ALL"]
    assert model_pod["spec"]["containers"][0]["envFrom"] == [{"secretRef": {"name": "artifacts"}}]

    url = served.service_url()
    answer = wait_for(
        "a prediction through the Service", lambda: answered(url, {"records": [VIRGINICA]}), timeout=60
    )
    assert answer.status_code == 200, answer.text
    assert answer.json()[0]["label"] == "virginica"
    refused = predict(url, {"records": [{**VIRGINICA, "petal_length": "abc"}]})
    assert refused is not None and refused.status_code == 400 and "petal_length" in refused.text

    query = f'sum(bentoml_service_request_total{{mlpipeline_dev_model_version="{run}",endpoint="/predict"}})'

    def scraped() -> float | None:
        result = httpx.get(f"{served.prometheus.url}/api/v1/query", params={"query": query}).json()
        values = [float(r["value"][1]) for r in result["data"]["result"]]
        return values[0] if values and values[0] >= 2 else None

    wait_for("Prometheus scraping the requests of the model pod it discovered", scraped, timeout=60)


def test_a_healthy_version_is_promoted_on_metrics_prometheus_scraped(served: Served) -> None:
    stable = served.status["serving"]["stable"]
    serving = served.roll_out(
        {"train": {"tune": {**served.manifest["spec"]["train"]["tune"], "trials": 3}}}, "a retrained version"
    )
    run = served.status["run"]["id"]
    assert serving["stable"] == run != stable, serving.get("message")
    assert serving["phase"] == "Promoted"
    checks = {c["name"]: c for c in serving["checks"]}
    assert set(checks) == {"errorRate", "latencyP95", "predictionShift", "offlineScore"}
    assert all(c["verdict"] == "pass" and c["value"] is not None for c in checks.values()), checks
    baseline = served.status["model"]["baseline"]  # what the evaluate pod measured beside the stable one
    assert baseline["version"] == stable, baseline
    assert checks["predictionShift"]["expected"] == baseline["predictionShift"], checks
    events = kube_json("get", "events", "-n", served.namespace, "--field-selector", "reason=CanaryPromoted")
    assert any(run in e["message"] for e in events["items"])
    served.wait_removed(stable, "the old version")


def swapped_labels() -> bytes:
    rows = list(csv.DictReader((EXAMPLES / "data" / "iris.csv").open()))
    swap = {"setosa": "virginica", "virginica": "setosa"}
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows({**r, "species": swap.get(r["species"], r["species"])} for r in rows)
    return out.getvalue().encode()


def test_a_faulty_version_is_rolled_back_and_the_stable_one_keeps_serving(served: Served) -> None:
    stable = served.status["serving"]["stable"]
    data = f"{served.store.prefix}/data/iris-swapped.csv"
    served.store.fs().pipe(data, swapped_labels())
    serving = served.roll_out({"data": {"uri": data}}, "a version trained on swapped labels")
    faulty = served.status["run"]["id"]
    assert served.status["model"]["score"] >= 0.85  # the evaluation gate could not see the fault
    assert serving["rolledBack"] == faulty and serving["stable"] == stable, serving.get("message")
    assert serving["phase"] == "RolledBack"
    shift = next(c for c in serving["checks"] if c["name"] == "predictionShift")
    assert shift["verdict"] == "fail" and shift["value"] > 0.2, shift
    # evaluate scored it on its own swapped labels and saw no shift on balanced held-out rows: the
    # skewed traffic shows what evaluate did not expect
    assert abs(shift["value"] - shift["expected"]) > shift["threshold"], shift
    assert all(c["value"] is not None for c in serving["checks"]), serving["checks"]
    served.wait_removed(faulty, "the faulty version")
    answer = predict(served.service_url(), {"records": [SETOSA]})
    assert answer is not None and answer.json()[0]["label"] == "setosa"


def iris_rows(**shift: float) -> list[dict[str, Any]]:
    """Every iris record, without its label, some features shifted, in a fixed random order (the
    file is sorted by species: its first 50 rows alone would drift on every feature)."""
    rows = list(csv.DictReader((EXAMPLES / "data" / "iris.csv").open()))
    random.Random(0).shuffle(rows)
    return [{k: float(v) + shift.get(k, 0.0) for k, v in r.items() if k != "species"} for r in rows]


def test_served_data_that_drifts_is_captured_reported_and_retrains_the_model(served: Served) -> None:
    stable = served.status["serving"]["stable"]
    spec = served.manifest["spec"]
    spec["data"]["uri"] = f"{served.store.prefix}/data/iris.csv"  # the stable version's own data again
    spec["monitoring"] = {
        "capture": {"sampleRate": 1.0},
        "drift": {"interval": "5s", "window": "10m", "minSamples": 300, "threshold": 0.2},
    }
    spec["retrain"] = {"onDrift": {"sustained": "15s", "features": ["petal_length"]}}
    before = (status_of(served.namespace).get("run") or {}).get("id")
    kubectl("apply", "-n", served.namespace, "-f", "-", stdin=yaml.safe_dump(served.manifest))
    wait_for(
        "the model servers re-applied with capture on",
        lambda: any(
            e["name"] == "MLP_CAPTURE_RATE" and e["value"] == "1.0"
            for d in kube_json(
                "get", "deployments", "-n", served.namespace, "-l", "app.kubernetes.io/component=serving"
            )["items"]
            for e in d["spec"]["template"]["spec"]["containers"][0]["env"]
        ),
        timeout=60,
    )
    wait_ready(
        served.namespace,
        model_object_name("iris", stable),
        "the re-applied model Deployment Ready",
        timeout=300,
    )
    # The spec change started a run (data.uri changed); once it finished, the rows are written again:
    # new data since the latest run. Drift without any would start no run but say so once (issue
    # 24.4, tests/workload/test_cycle.py); the operator may list this prefix.
    wait_for(
        "the run the spec change started, finished",
        lambda: (
            (r := failing_fast(status_of(served.namespace)).get("run") or {}).get("id") != before
            and r.get("finishedAt")
        ),
        timeout=300,
        interval=2,
    )
    time.sleep(1.5)  # the store's modification times have whole seconds
    served.store.fs().put(str(EXAMPLES / "data" / "iris.csv"), spec["data"]["uri"])
    load = Load(
        served.service_url(),
        iris_rows(petal_length=3.0),
        rate=10,
        threads=3,
        keepalive=False,
        max_seconds=600,
    )
    load.start()
    try:
        monitoring = wait_for(
            "status.monitoring showing the drift",
            lambda: (m := status_of(served.namespace).get("monitoring") or {}).get("features") and m,
            timeout=180,
            interval=3,
        )
        drift = {f["name"]: f for f in monitoring["features"]}
        assert drift["petal_length"]["drifted"] and drift["petal_length"]["value"] > 0.2, monitoring
        assert not drift["sepal_width"]["drifted"], monitoring
        assert monitoring["modelVersion"] == stable and monitoring["samples"] >= 300
        run = wait_for(
            "a run triggered by the drift",
            lambda: (r := status_of(served.namespace).get("run") or {}).get("trigger") == "drift" and r,
            timeout=120,
            interval=3,
        )
        assert "petal_length=" in run["triggerValue"] and stable in run["triggerValue"], run

        def promoted() -> dict[str, Any] | None:
            serving = failing_fast(status_of(served.namespace)).get("serving") or {}
            if serving.get("rolledBack") == run["id"]:
                raise FailFast(f"the drift run was rolled back: {serving}")
            return serving if serving.get("stable") == run["id"] else None

        serving = wait_for("the drift-triggered run trained, rolled out and promoted", promoted, 600, 3)
        assert serving["phase"] == "Promoted", serving
    finally:
        load.stop()
    url = served.service_url()
    answer = wait_for("a prediction through the Service", lambda: answered(url, {"records": [VIRGINICA]}), 60)
    assert answer.json()[0]["label"] == "virginica"
    fs = served.store.fs()
    captured = fs.glob(
        f"{served.store.prefix}/{served.namespace}/iris/capture/version={stable}/hour=*/*.jsonl"
    )
    assert captured, "no capture file in the store"
    report = monitoring["report"]
    assert report.startswith("s3://") and "petal_length" in fs.cat(report).decode()
