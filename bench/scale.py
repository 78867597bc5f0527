"""How the operator copes with many pipelines, against the physical limit of the same work: a bare
client creating the same five Jobs per pipeline, in the same order, each after the previous one
succeeded, on the same API server, measured in the same run.

    python -m bench.scale [--pipelines 100] [--rest 0]

On the local kwok cluster (hack/cluster.sh up; started when down): N MLPipelines (serving off) are
applied at once; the operator runs as a process watching the bench's namespace. Prints JSON: wall
time until every pipeline finished its five steps, latency to a pipeline's first Job (p50, p99; from
the moment the create call is issued: the pipeline's, or the bare client's first Job's), the
operator's API requests and reconciliations per pipeline, its resident memory (at start, peak, at
rest); for the bare client the same wall time and latencies, and the ratios.
Each side's CPU seconds too (the operator's or the client's, and the test cluster's processes on
this machine), to tell a saturated machine from a slow operator.
Then the operator is restarted on the finished pipelines: the seconds until it has reconciled each
once (read them all) and its resident memory once quiet. ``--rest M`` first adds pipelines until M
exist and waits for them to finish, so that the restart is measured with M pipelines;
``--baseline-source DIR`` restarts another checkout's operator on them first (before and after a
change, on the same pipelines).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import yaml
from kubernetes import client, config, watch
from mlpipeline.api.models import GROUP, PLURAL, VERSION, MLPipelineSpec
from mlpipeline.engine.plan import STEPS, run_id
from mlpipeline.kube.client import Kube
from mlpipeline.kube.jobs import OperatorSettings, build_step_job
from mlpipeline.local.server import free_port

from bench.stats import percentile

ROOT = Path(__file__).resolve().parents[1]
KUBECONFIG = ROOT / ".cluster" / "kubeconfig"
PIPELINE_LABEL = "mlpipeline.dev/pipeline"
STEP_LABEL = "mlpipeline.dev/step"
WORKERS = 8  # the operator's thread pool (controller/handlers.py): the bare client gets as many


def manifest(name: str) -> dict[str, Any]:
    document = yaml.safe_load((ROOT / "examples" / "iris.yaml").read_text())
    document["metadata"] = {"name": name}
    document["spec"]["data"]["uri"] = "s3://datasets/iris.csv"
    document["spec"]["serve"] = {"enabled": False}
    document["spec"]["train"]["resources"] = {"cpu": "10m", "memory": "64Mi"}
    return document  # type: ignore[no-any-return]


def latency(values: list[float], q: float) -> float | None:
    found = percentile(values, q)
    return None if found is None else round(found, 3)


class Jobs:
    """A watch on the Jobs of one namespace: when each pipeline's first Job appeared, which steps
    succeeded (bench clock)."""

    def __init__(self, namespace: str, on_success: Callable[[str, str], None] | None = None) -> None:
        self.namespace = namespace
        self.first: dict[str, float] = {}
        self.succeeded: defaultdict[str, set[str]] = defaultdict(set)
        self.names: defaultdict[str, set[str]] = defaultdict(set)
        self.on_success = on_success
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._watch, daemon=True)
        self.thread.start()

    def _watch(self) -> None:
        batch = client.BatchV1Api()
        version = ""
        while not self.stop.is_set():
            stream = watch.Watch().stream(  # type: ignore[no-untyped-call]
                batch.list_namespaced_job,
                self.namespace,
                label_selector=PIPELINE_LABEL,
                resource_version=version,
                timeout_seconds=30,
            )
            for event in stream:
                now = time.monotonic()
                job = event["object"]
                version = job.metadata.resource_version
                pipeline, step = job.metadata.labels[PIPELINE_LABEL], job.metadata.labels[STEP_LABEL]
                self.first.setdefault(pipeline, now)
                self.names[pipeline].add(job.metadata.name)
                if (job.status.succeeded or 0) >= 1 and step not in self.succeeded[pipeline]:
                    self.succeeded[pipeline].add(step)
                    if self.on_success:
                        self.on_success(pipeline, step)

    def finished(self) -> int:
        return sum(1 for steps in self.succeeded.values() if len(steps) == len(STEPS))


CONTROL_PLANE = ("kube-apiserver", "etcd", "kube-controller", "kube-scheduler", "kwok")  # /proc/*/comm


def cpu_seconds(pid: int) -> float:
    """User and system CPU seconds a process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def control_plane_cpu() -> float:
    """CPU seconds used so far by the test cluster's processes on this machine."""
    total = 0.0
    for stat in Path("/proc").glob("[0-9]*/comm"):
        try:
            if stat.read_text().strip().startswith(CONTROL_PLANE):
                total += cpu_seconds(int(stat.parent.name))
        except (FileNotFoundError, ProcessLookupError, IndexError):
            continue
    return total


def wait(what: str, done: Callable[[], bool], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not done():
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {what}")
        time.sleep(0.2)


def delete_namespace(name: str, timeout: float = 1800) -> None:
    core = client.CoreV1Api()
    core.delete_namespace(name)
    wait(
        f"namespace {name} deleted",
        lambda: not core.list_namespace(field_selector=f"metadata.name={name}").items,
        timeout,
    )


def create_namespace(prefix: str) -> str:
    name = f"{prefix}-{uuid.uuid4().hex[:6]}"
    client.CoreV1Api().create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    return name


def bare_client(count: int, timeout: float) -> dict[str, Any]:
    """The same Jobs the operator creates, without an operator: no reads, no status, no events."""
    namespace = create_namespace("bench-bare")
    kube = Kube(component="bench", kubeconfig=str(KUBECONFIG))
    settings = OperatorSettings(node_selector={"type": "kwok"})
    names = [f"p{i:05d}" for i in range(count)]
    specs = {n: MLPipelineSpec.model_validate(manifest(n)["spec"]) for n in names}
    pool = ThreadPoolExecutor(WORKERS)
    started: dict[str, float] = {}

    def create(pipeline: str, step: str) -> None:
        spec = specs[pipeline]
        job = build_step_job(
            pipeline=pipeline,
            namespace=namespace,
            uid="",
            spec=spec,
            run=run_id(spec, pipeline),
            step=step,
            settings=settings,
        )
        job["metadata"].pop("ownerReferences", None)  # no pipeline owns them: the GC would delete them
        if step == STEPS[0]:
            started[pipeline] = time.monotonic()  # the clock of the first-Job latency: see apply_pipelines
        kube.create(job)

    def next_step(pipeline: str, step: str) -> None:
        following = STEPS.index(step) + 1
        if following < len(STEPS):
            pool.submit(create, pipeline, STEPS[following])

    jobs = Jobs(namespace, next_step)
    began, cpu = time.monotonic(), (control_plane_cpu(), cpu_seconds(os.getpid()))
    for name in names:
        pool.submit(create, name, STEPS[0])
    wait("the bare client's Jobs", lambda: jobs.finished() == count, timeout)
    wall = time.monotonic() - began
    used = {
        "cpu_seconds_control_plane": round(control_plane_cpu() - cpu[0], 1),
        "cpu_seconds_client": round(cpu_seconds(os.getpid()) - cpu[1], 1),  # its Job watch included
    }
    jobs.stop.set()
    latencies = [jobs.first[n] - started[n] for n in names]
    delete_namespace(namespace)  # and wait: its garbage collection would load the operator's run
    return {
        "seconds": round(wall, 1),
        "first_job_p50": latency(latencies, 0.5),
        "first_job_p99": latency(latencies, 0.99),
        **used,
    }


class OperatorProcess:
    def __init__(self, namespace: str, source: str | None = None) -> None:
        self.port = free_port()
        self.read_all = 0.0  # when a restarted operator had reconciled every pipeline once
        env = {
            **os.environ,
            "KUBECONFIG": str(KUBECONFIG),
            "MLP_METRICS_PORT": str(self.port),
            "MLP_ARTIFACTS_URI": "s3://mlpipeline-bench/artifacts",
            "MLP_POD_NODE_SELECTOR": "type=kwok",
            "MLP_LOG_LEVEL": "WARNING",
        }
        if source:  # another checkout's operator (e.g. the commit before a change), same bench
            env["PYTHONPATH"] = str(Path(source) / "operator")
        command = [sys.executable, "-m", "mlpipeline.cli", "operator", "--namespace", namespace]
        self.log = Path(tempfile.mkdtemp(prefix="bench-scale-")) / "operator.log"
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
        wait("the operator's metrics", self._up, 120)

    def _up(self) -> bool:
        try:
            return httpx.get(f"http://127.0.0.1:{self.port}/metrics").status_code == 200
        except httpx.HTTPError:
            return False

    def memory_mb(self, field: str) -> float:
        """VmRSS (resident now) or VmHWM (peak resident) of the operator, in MB."""
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return round(int(line.split()[1]) / 1024, 1)
        raise KeyError(field)

    def counters(self) -> dict[str, float]:
        text = httpx.get(f"http://127.0.0.1:{self.port}/metrics").text
        found: defaultdict[str, float] = defaultdict(float)
        for line in text.splitlines():
            if line.startswith("mlpipeline_operator_reconcile_seconds_sum "):
                found["reconcile_seconds"] = float(line.split()[1])
            for name in (
                "mlpipeline_operator_api_requests_total",
                "mlpipeline_operator_reconciliations_total",
            ):
                if line.startswith(name + "{"):
                    labels = line[line.index("{") + 1 : line.index("}")]
                    key = ",".join(v.split("=")[1].strip('"') for v in labels.split(","))
                    found[f"{name.split('_')[2]}:{key}"] += float(line.rsplit(" ", 1)[1])
        return dict(found)

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def apply_pipelines(namespace: str, names: list[str]) -> dict[str, float]:
    """Creates the pipelines from WORKERS threads; returns when each creation was issued.

    The first-Job latency of both sides starts at the same kind of moment: when a worker thread
    issues the create call (here the pipeline's, in the bare client its first Job's), after any wait
    in the pool's queue and before the API server has answered; it ends when the Job watch sees the
    first Job."""
    api = client.CustomObjectsApi()
    created: dict[str, float] = {}

    def create(name: str) -> None:
        body = {"apiVersion": f"{GROUP}/{VERSION}", "kind": "MLPipeline", **manifest(name)}
        created[name] = time.monotonic()
        api.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, body)

    with ThreadPoolExecutor(WORKERS) as pool:
        list(pool.map(create, names))
    return created


def phases(namespace: str) -> dict[str, int]:
    found: Any = client.CustomObjectsApi().list_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL)
    items: list[dict[str, Any]] = found["items"]
    counts: defaultdict[str, int] = defaultdict(int)
    for item in items:
        counts[(item.get("status") or {}).get("phase") or "None"] += 1
    return dict(counts)


def with_operator(
    count: int, rest: int, timeout: float, source: str | None, baseline: str | None = None
) -> dict[str, Any]:
    namespace = create_namespace("bench-op")
    operator = OperatorProcess(namespace, source)
    try:
        time.sleep(2)
        at_start = operator.memory_mb("VmRSS")
        names = [f"p{i:05d}" for i in range(count)]
        jobs = Jobs(namespace)
        began, cpu = time.monotonic(), (control_plane_cpu(), cpu_seconds(operator.process.pid))
        created = apply_pipelines(namespace, names)
        wait("the operator's pipelines", lambda: phases(namespace).get("Packaged", 0) == count, timeout)
        wall = time.monotonic() - began
        used = {
            "cpu_seconds_control_plane": round(control_plane_cpu() - cpu[0], 1),
            "cpu_seconds_operator": round(cpu_seconds(operator.process.pid) - cpu[1], 1),
        }
        counters = operator.counters()
        requests = {k[4:]: v for k, v in sorted(counters.items()) if k.startswith("api:")}
        latencies = [jobs.first[n] - created[n] for n in names]
        duplicates = sum(len(jobs.names[n]) - len(STEPS) for n in names)
        result: dict[str, Any] = {
            "seconds": round(wall, 1),
            "first_job_p50": latency(latencies, 0.5),
            "first_job_p99": latency(latencies, 0.99),
            "extra_jobs": duplicates,
            # null: an operator (--operator-source) from before the request counter existed
            "api_requests_per_pipeline": round(sum(requests.values()) / count, 1) if requests else None,
            "api_requests_by_verb_resource": {k: round(v / count, 2) for k, v in requests.items()} or None,
            "reconciliations_per_pipeline": round(
                sum(v for k, v in counters.items() if k.startswith("reconciliations:")) / count, 1
            ),
            "reconcile_ms_mean": round(
                1000
                * counters.get("reconcile_seconds", 0)
                / max(1, sum(v for k, v in counters.items() if k.startswith("reconciliations:"))),
                1,
            ),
            **used,
            "memory_mb_at_start": at_start,
            "memory_mb_peak": operator.memory_mb("VmHWM"),
        }
        time.sleep(5)
        result["memory_mb_at_rest"] = operator.memory_mb("VmRSS")
        if rest > count:
            more = [f"p{i:05d}" for i in range(count, rest)]
            apply_pipelines(namespace, more)
            wait(
                f"{rest} pipelines at rest",
                lambda: phases(namespace).get("Packaged", 0) == rest,
                timeout * 10,
            )
        operator.stop()
        total = max(rest, count)
        for label, checkout in ([("baseline", baseline)] if baseline else []) + [("", source)]:
            restarted = time.monotonic()
            operator = OperatorProcess(namespace, checkout)
            suffix = f"_{label}" if label else ""
            try:
                memory: float | str = settled_memory(operator, total)
                read_all = round(operator.read_all - restarted, 1)
                result[f"restart_seconds_until_{total}_read{suffix}"] = read_all
            except SystemExit as exc:  # a finding too: keep the figures above
                memory = f"{exc} (resident {operator.memory_mb('VmRSS')} MB)"
            result[f"memory_mb_restarted_at_rest_{total}{suffix}"] = memory
            if label:
                operator.stop()
        jobs.stop.set()
        return result
    finally:
        operator.stop()
        delete_namespace(namespace)


def settled_memory(operator: OperatorProcess, count: int) -> float:
    """Resident memory of an operator (re)started on finished pipelines, once it has read them all
    (one reconciliation each) and gone quiet: what it holds, without the garbage of a burst."""

    def reconciled() -> float:
        return sum(v for k, v in operator.counters().items() if k.startswith("reconciliations:"))

    wait("the restarted operator's first reconciliations", lambda: reconciled() >= count, 600)
    operator.read_all = time.monotonic()
    before = -1.0
    while before != reconciled():
        before = reconciled()
        time.sleep(5)
    return operator.memory_mb("VmRSS")


def bench_nodes(count: int = 4) -> list[str]:
    """Large simulated nodes, so that the bench measures the operator, not the scheduling of pods on
    the test cluster's four small ones (steps wait there as Unschedulable when 100 pipelines run)."""
    core, names = client.CoreV1Api(), [f"bench-{i}" for i in range(count)]
    capacity = {"cpu": "1000", "memory": "4Ti", "pods": "2000"}
    for name in names:
        node: Any = {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {
                "name": name,
                "annotations": {"kwok.x-k8s.io/node": "fake"},
                "labels": {"type": "kwok", "kubernetes.io/hostname": name, "kubernetes.io/os": "linux"},
            },
            "status": {"capacity": capacity, "allocatable": capacity},
        }
        if not core.list_node(field_selector=f"metadata.name={name}").items:
            core.create_node(node)
    wait("the bench nodes to be Ready", lambda: all(_ready(core.read_node(n)) for n in names), 60)
    return names


def _ready(node: Any) -> bool:
    return any(c.type == "Ready" and c.status == "True" for c in node.status.conditions or [])


def ensure_cluster() -> None:
    subprocess.run([str(ROOT / "hack" / "cluster.sh"), "up"], check=True, capture_output=True)
    kubectl = str(ROOT / ".venv" / "bin" / "kubectl")
    crds = str(ROOT / "crds")
    subprocess.run(
        [kubectl, "--kubeconfig", str(KUBECONFIG), "apply", "--server-side", "-f", crds], check=True
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pipelines", type=int, default=100)
    parser.add_argument("--rest", type=int, default=0, help="then report memory with this many at rest")
    parser.add_argument("--timeout", type=float, default=1800)
    parser.add_argument("--operator-source", help="run the operator of this checkout instead")
    parser.add_argument(
        "--baseline-source", help="restart the operator of this checkout first too, on the same pipelines"
    )
    options = parser.parse_args()
    ensure_cluster()
    config.load_kube_config(str(KUBECONFIG))  # type: ignore[no-untyped-call]
    nodes = bench_nodes()
    try:
        bare = bare_client(options.pipelines, options.timeout)
        operated = with_operator(
            options.pipelines, options.rest, options.timeout, options.operator_source, options.baseline_source
        )
    finally:
        for node in nodes:
            client.CoreV1Api().delete_node(node)
    print(
        json.dumps(
            {
                "pipelines": options.pipelines,
                "operator": operated,
                "bare_client": bare,
                "wall_time_ratio": round(operated["seconds"] / bare["seconds"], 2),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
