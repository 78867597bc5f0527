"""The real tier: the same control plane with one real node (containerd, runc, kubelet, kube-proxy:
hack/node.sh) beside kwok's fake ones, the project's image built here (make image) and imported
into the node's runtime, and an operator whose pods are all placed on the real node. Nothing is
simulated: step pods train, model pods serve.

Skipped where this machine cannot run containers (not root, no overlay mount): a failure, with
its reason, under `make test` and in CI, where no skip is allowed (tests/conftest.py).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import httpx
import pytest
import s3fs
import yaml
from mlpipeline.local.server import free_port

from tests.cluster.conftest import (  # noqa: F401  (fixtures)
    KUBECONFIG,
    SESSION_OPERATORS,
    FailFast,
    Operator,
    cluster,
    delete_namespace,
    kube_json,
    kubectl,
    session_operator,
    session_operators_alive,
    wait_for,
)
from tests.conftest import EXAMPLES, ROOT, example

REAL_NODE = "real-0"
# Prometheus with Kubernetes service discovery, built by hack/build-node.sh (Debian's lacks it).
PROMETHEUS = sorted(
    (Path(os.environ.get("MLP_CACHE", Path.home() / ".cache" / "mlpipeline")) / "bin").glob(
        "prometheus-v*/prometheus"
    )
)
REAL_LABEL = "mlpipeline.dev/real-node=true"
PROMETHEUS_PORT = free_port()
PROMETHEUS_URL = f"http://127.0.0.1:{PROMETHEUS_PORT}"  # the only Prometheus the operator may query
NODE = ROOT / "hack" / "node.sh"


def cannot_run_containers() -> str | None:
    if os.geteuid() != 0:
        return "the real node needs root (containerd, kubelet, network namespaces)"
    return overlay_mount_fails()


def overlay_mount_fails() -> str | None:
    """Mounts an overlay as containerd's snapshotter will (the kernel loads the module on the first
    mount, so /proc/filesystems alone says nothing on a fresh machine); the reason when it fails."""
    with tempfile.TemporaryDirectory(prefix="overlay-probe-") as tmp:
        lower, upper, work, merged = (Path(tmp) / d for d in ("lower", "upper", "work", "merged"))
        for folder in (lower, upper, work, merged):
            folder.mkdir()
        options = f"lowerdir={lower},upperdir={upper},workdir={work}"
        mounted = subprocess.run(
            ["mount", "-t", "overlay", "overlay", "-o", options, str(merged)],
            capture_output=True,
            text=True,
            timeout=30,
        )
        if mounted.returncode != 0:
            return f"the real node needs overlayfs (containerd's snapshotter): {mounted.stderr.strip()}"
        subprocess.run(["umount", str(merged)], capture_output=True, timeout=30)
    return None


@dataclass(frozen=True)
class Image:
    name: str  # the content tag: exactly the code of this checkout
    archive: Path


def built_image() -> Image:
    out = subprocess.run(
        [str(ROOT / "hack" / "build-image.sh")], capture_output=True, text=True, timeout=1800
    )
    assert out.returncode == 0, out.stderr[-3000:]
    env = dict(
        line.split("=", 1)
        for line in (ROOT / ".cluster" / "image" / "image.env").read_text().splitlines()
        if "=" in line
    )
    return Image(env["IMAGE_CONTENT"], Path(env["IMAGE_ARCHIVE"]))


@pytest.fixture(scope="session")
def real_node(request: pytest.FixtureRequest) -> Iterator[Image]:
    """real-0 up and Ready, with the project's image in its runtime."""
    reason = cannot_run_containers()
    if reason:
        pytest.skip(reason)  # a failure where skips are not allowed (tests/conftest.py)
    request.getfixturevalue("cluster")
    image = built_image()
    already_up = subprocess.run([str(NODE), "status"], capture_output=True, timeout=60).returncode == 0
    up = subprocess.run([str(NODE), "up"], capture_output=True, text=True, timeout=600)
    assert up.returncode == 0, up.stdout + up.stderr
    name, _, _ = image.name.rpartition(":")
    imported = subprocess.run(
        [str(NODE), "import", str(image.archive), name], capture_output=True, text=True, timeout=900
    )
    assert imported.returncode == 0, imported.stdout + imported.stderr
    yield image
    if not already_up:
        subprocess.run([str(NODE), "down"], capture_output=True, timeout=300)


@pytest.fixture(scope="session")
def real_operator(real_node: Image, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Operator]:
    """The operator, its pods pinned to the real node and running the image built here, with the
    S3 store's keys in its environment (what the chart's storeSecret gives it) to list new data."""
    env = store_env()
    store = {k: v for k, v in env.items() if k.startswith("AWS_")}
    allowed = {
        "MLP_DATA_PREFIXES": f"s3://{env['MLP_STORE_BUCKET']}/{{namespace}}/",  # each team's own prefix
        "MLP_PROMETHEUS_ALLOWED_URLS": PROMETHEUS_URL,  # the Prometheus test_real_pipeline starts
    }
    running = Operator(
        log=tmp_path_factory.mktemp("real-operator") / "operator.log",
        metrics_port=free_port(),
        namespaces="real-*",
        env={"MLP_STEP_IMAGE": real_node.name, "MLP_POD_NODE_SELECTOR": REAL_LABEL, **store, **allowed},
    )
    yield from session_operator(running)


def store_env() -> dict[str, str]:
    """AWS_ENDPOINT_URL, the keys and MLP_STORE_BUCKET of the S3 store beside the real node."""
    out = subprocess.run([str(NODE), "store-env"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return dict(line.split("=", 1) for line in out.stdout.splitlines() if "=" in line)


def host_address() -> str:
    """The address of this machine that pods on the real node reach (the S3 store listens there)."""
    return str(urlparse(store_env()["AWS_ENDPOINT_URL"]).hostname)


@dataclass(frozen=True)
class SharedStore:
    """A ReadWriteMany claim on a hostPath of the real node: the artifact store of its pods."""

    namespace: str
    claim: str
    path: Path  # the same folder, seen from this machine


def make_shared_store(namespace: str) -> SharedStore:
    path = Path("/var/tmp/mlpipeline-real") / namespace
    path.mkdir(parents=True)
    os.chown(path, 10001, 10001)  # the image's user
    create_namespace(namespace)
    objects = [
        {
            "apiVersion": "v1",
            "kind": "PersistentVolume",
            "metadata": {"name": f"{namespace}-artifacts"},
            "spec": {
                "capacity": {"storage": "5Gi"},
                "accessModes": ["ReadWriteMany"],
                "storageClassName": "",
                "hostPath": {"path": str(path), "type": "Directory"},
                "claimRef": {"namespace": namespace, "name": "artifacts"},
            },
        },
        {
            "apiVersion": "v1",
            "kind": "PersistentVolumeClaim",
            "metadata": {"name": "artifacts", "namespace": namespace},
            "spec": {
                "accessModes": ["ReadWriteMany"],
                "storageClassName": "",
                "volumeName": f"{namespace}-artifacts",
                "resources": {"requests": {"storage": "5Gi"}},
            },
        },
    ]
    kubectl("apply", "-f", "-", stdin=json.dumps({"apiVersion": "v1", "kind": "List", "items": objects}))
    (path / "data").mkdir()
    shutil.copy(EXAMPLES / "data" / "iris.csv", path / "data" / "iris.csv")
    os.chown(path / "data", 10001, 10001)
    return SharedStore(namespace, "artifacts", path)


def remove_shared_store(store: SharedStore) -> None:
    remove_namespace(store.namespace)
    kubectl("delete", "pv", f"{store.namespace}-artifacts", "--wait=false", check=False)
    shutil.rmtree(store.path, ignore_errors=True)


@pytest.fixture
def shared_store(real_node: Image, request: pytest.FixtureRequest) -> Iterator[SharedStore]:
    """A namespace with the claim ``artifacts`` on a hostPath of the real node, the iris data in
    it at data/iris.csv. The namespace's prefix (``real-`` unless the test is marked
    ``namespace_prefix``) decides which operator watches it."""
    marker = request.node.get_closest_marker("namespace_prefix")
    prefix = marker.args[0] if marker else "real-"
    store = make_shared_store(f"{prefix}{uuid.uuid4().hex[:8]}")
    yield store
    remove_shared_store(store)


@dataclass(frozen=True)
class S3Store:
    """The S3 API (SeaweedFS) that hack/node.sh runs beside the real node, and a namespace with the
    Secret ``artifacts`` holding its endpoint and keys."""

    namespace: str
    env: dict[str, str]  # AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, MLP_STORE_BUCKET

    @property
    def prefix(self) -> str:
        return f"s3://{self.env['MLP_STORE_BUCKET']}/{self.namespace}"

    def fs(self) -> s3fs.S3FileSystem:
        return s3fs.S3FileSystem(
            key=self.env["AWS_ACCESS_KEY_ID"],
            secret=self.env["AWS_SECRET_ACCESS_KEY"],
            client_kwargs={"endpoint_url": self.env["AWS_ENDPOINT_URL"]},
            skip_instance_cache=True,
        )


@pytest.fixture(scope="module")
def s3_store(real_node: Image) -> Iterator[S3Store]:
    """A ``real-`` namespace whose Secret ``artifacts`` holds the S3 store's endpoint and keys (the
    keys a pipeline's spec.artifacts.secretRef hands to its pods), the iris data at
    <prefix>/data/iris.csv."""
    env = store_env()
    store = S3Store(f"real-{uuid.uuid4().hex[:8]}", env)
    create_namespace(store.namespace)
    secret = {k: v for k, v in env.items() if k.startswith("AWS_")}
    kubectl(
        "create", "secret", "generic", "artifacts", "-n", store.namespace,
        *(f"--from-literal={k}={v}" for k, v in secret.items()),
    )  # fmt: skip
    store.fs().put(str(EXAMPLES / "data" / "iris.csv"), f"{store.prefix}/data/iris.csv")
    yield store
    remove_namespace(store.namespace)
    store.fs().rm(store.prefix, recursive=True)


def real_manifest(artifacts: S3Store | None = None) -> dict[str, Any]:
    """The iris example, small enough for two cores; its data and artifacts in the S3 store with
    the Secret's credentials, or without one on the claim ``artifacts`` (the PVC mode)."""
    document = example("iris")
    spec = document["spec"]
    spec["train"]["tune"] |= {"algorithm": "random", "scheduler": "none", "trials": 2, "maxConcurrent": 1}
    spec["train"]["resources"] = {"cpu": "500m", "memory": "2Gi"}
    spec["serve"] |= {"cpu": "100m", "memory": "1Gi"}
    spec["steps"] = {"retries": 0, "timeout": "15m"}
    if artifacts:
        spec["data"]["uri"] = f"{artifacts.prefix}/data/iris.csv"
        spec["artifacts"] = {"uri": artifacts.prefix, "secretRef": {"name": "artifacts"}}
    else:
        spec["data"]["uri"] = "file:///artifacts/data/iris.csv"
        spec["artifacts"] = {"pvc": "artifacts"}
    return document


LIVE_NAMESPACES: list[str] = []  # the real tier's namespaces that exist now: diagnosed on failure


def create_namespace(name: str) -> None:
    kubectl("create", "namespace", name)
    LIVE_NAMESPACES.append(name)


def remove_namespace(name: str) -> None:
    LIVE_NAMESPACES.remove(name)
    delete_namespace(name)


def diagnosis(namespace: str) -> str:
    """What a person looks at first when a pipeline did not get where a test waited for it: each
    pipeline's status, the namespace's latest Events, and the log tail of its unfinished or failed
    pods (or else of its latest pod)."""
    lines = [f"== namespace {namespace}"]
    for pipeline in kube_json("get", "mlpipelines", "-n", namespace)["items"]:
        status = pipeline.get("status") or {}
        name = pipeline["metadata"]["name"]
        lines.append(f"-- MLPipeline {name}: {status.get('phase')}: {status.get('message')}")
        for step in (status.get("run") or {}).get("steps", []):
            lines.append(f"   step {step.get('name')}: {step.get('phase')} {step.get('message') or ''}")
        lines.append(f"   serving: {json.dumps(status.get('serving'))[:1500]}")
    events = kubectl("get", "events", "-n", namespace, "--sort-by=.lastTimestamp", check=False).stdout
    lines += ["-- Events (latest 25)", *events.splitlines()[-25:]]
    pods = kube_json("get", "pods", "-n", namespace)["items"]
    suspects = [p for p in pods if p["status"].get("phase") not in ("Succeeded", "Running")] or pods[-1:]
    for pod in suspects[:4]:
        name = pod["metadata"]["name"]
        tail = kubectl("logs", "-n", namespace, name, "--all-containers", "--tail=30", check=False)
        lines += [f"-- pod {name} ({pod['status'].get('phase')}), log tail:", tail.stdout + tail.stderr]
    return "\n".join(lines)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    if not report.failed or not (LIVE_NAMESPACES or SESSION_OPERATORS):
        return report
    try:
        text = "\n".join(diagnosis(namespace) for namespace in LIVE_NAMESPACES)
        text += "".join(f"\n== operator log tail\n{o.log_tail()}" for o in SESSION_OPERATORS)
    except (AssertionError, OSError, subprocess.SubprocessError, ValueError) as exc:
        text = f"the diagnosis failed: {exc!r}"
    report.sections.append(("pipeline diagnosis", text))
    return report


def status_of(namespace: str, name: str = "iris") -> dict[str, Any]:
    return kube_json("get", "mlpipeline", name, "-n", namespace).get("status") or {}


def run_to_serving(namespace: str, what: str, manifest: dict[str, Any] | None = None) -> dict[str, Any]:
    """Applies the pipeline (default: the PVC mode's) and waits until it serves; returns its status."""
    manifest = manifest or real_manifest()
    kubectl("apply", "-n", namespace, "-f", "-", stdin=yaml.safe_dump(manifest))
    name = manifest["metadata"]["name"]
    return wait_for(what, lambda: serving_or_failed(namespace, name), timeout=600, interval=2)  # type: ignore[no-any-return]


def serving_or_failed(namespace: str, name: str) -> dict[str, Any] | None:
    status = failing_fast(status_of(namespace, name))
    return status if status.get("phase") == "Serving" else None


def failing_fast(status: dict[str, Any]) -> dict[str, Any]:
    """The status (of a pipeline, or a part of it with a phase) unless it Failed: then FailFast,
    which ends any wait at once with its message."""
    if status.get("phase") == "Failed":
        raise FailFast(f"Failed: {status.get('message')} (status: {json.dumps(status)[:2000]})")
    return status


def service_url(namespace: str, name: str = "iris") -> str:
    """The predict URL of the pipeline's Service, by its ClusterIP (kube-proxy answers from here)."""
    ip = kube_json("get", "service", name, "-n", namespace)["spec"]["clusterIP"]
    return f"http://{ip}:3000/predict"


def predict(url: str, body: dict[str, Any]) -> httpx.Response | None:
    try:
        return httpx.post(url, json=body, timeout=10)
    except httpx.TransportError:
        return None  # the ClusterIP refuses for about a second after the pod turns Ready


def answered(url: str, body: dict[str, Any]) -> httpx.Response | None:
    """The answer once it is a 200: for a few seconds after the model pod turns Ready the Service
    may refuse or answer 404 (issue 24 asks for `Serving` only once the model answers)."""
    answer = predict(url, body)
    return answer if answer is not None and answer.status_code == 200 else None


def wait_ready(namespace: str, deployment: str, what: str, timeout: float = 300) -> None:
    wait_for(
        what,
        lambda: kube_json("get", "deployment", deployment, "-n", namespace)["status"].get("readyReplicas"),
        timeout=timeout,
        interval=2,
    )


def logs(namespace: str, selector: str) -> str:
    return kubectl("logs", "-n", namespace, "-l", selector, "--tail=-1", "--prefix", timeout=60).stdout


__all__ = [
    "KUBECONFIG",
    "PROMETHEUS_PORT",
    "PROMETHEUS_URL",
    "REAL_NODE",
    "Image",
    "S3Store",
    "SharedStore",
    "answered",
    "failing_fast",
    "logs",
    "predict",
    "run_to_serving",
    "service_url",
    "wait_ready",
]
