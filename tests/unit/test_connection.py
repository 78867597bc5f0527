"""How the operator finds and authenticates to the API server without the kubernetes client library:
a pod's service account, the kubeconfig forms users have (files relative to the kubeconfig, inline
data, token files, exec plugins), and a rotated token read again after a 401. (TLS with client
certificates against a real API server: every test under tests/cluster.)"""

from __future__ import annotations

import json
import stat
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml
from mlpipeline.kube.client import Kube
from mlpipeline.kube.connection import ApiError, ConfigError, from_kubeconfig, in_cluster, load_connection


def kubeconfig(path: Path, user: dict[str, Any], cluster: dict[str, Any] | None = None) -> Path:
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "current-context": "dev",
                "contexts": [{"name": "dev", "context": {"cluster": "c", "user": "u", "namespace": "ml"}}],
                "clusters": [{"name": "c", "cluster": cluster or {"server": "https://10.0.0.1:6443"}}],
                "users": [{"name": "u", "user": user}],
            }
        )
    )
    return path


def test_a_pod_uses_its_service_account_and_the_address_in_its_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "token").write_text("sa-token\n")
    (tmp_path / "namespace").write_text("mlpipeline-system")
    (tmp_path / "ca.crt").write_text("-----BEGIN CERTIFICATE-----\n")
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "fd00::1")
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", "443")
    found = in_cluster(tmp_path)
    assert found is not None
    assert found.server == "https://[fd00::1]:443", "no cluster DNS needed, IPv6 bracketed"
    assert (found.token, found.default_namespace) == ("sa-token", "mlpipeline-system")
    assert found.ca_path == str(tmp_path / "ca.crt")
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST")
    assert in_cluster(tmp_path) is None, "outside a pod: the kubeconfig is used"


def test_kubeconfig_files_are_relative_to_the_kubeconfig_and_the_first_file_wins(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "pki").mkdir()
    first = kubeconfig(
        tmp_path / "first.yaml",
        {"client-certificate": "pki/admin.crt", "client-key": "pki/admin.key"},
        {"server": "https://127.0.0.1:6443", "certificate-authority": "pki/ca.crt"},
    )
    second = kubeconfig(tmp_path / "second.yaml", {"token": "other"}, {"server": "https://elsewhere"})
    monkeypatch.setenv("KUBECONFIG", f"{first}:{second}")
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    found = load_connection()
    assert found.server == "https://127.0.0.1:6443" and found.default_namespace == "ml"
    assert found.certificate_path == str(tmp_path / "pki" / "admin.crt")
    assert found.private_key_path == str(tmp_path / "pki" / "admin.key")
    assert found.ca_path == str(tmp_path / "pki" / "ca.crt") and found.token is None


def test_a_token_file_and_an_exec_plugin_give_the_token(tmp_path: Path) -> None:
    (tmp_path / "token").write_text("from-file\n")
    assert from_kubeconfig(str(kubeconfig(tmp_path / "a.yaml", {"tokenFile": "token"}))).token == "from-file"
    plugin = tmp_path / "plugin.py"
    plugin.write_text(
        "import json, os\n"
        "request = json.loads(os.environ['KUBERNETES_EXEC_INFO'])\n"
        "token = os.environ['PREFIX'] + request['spec']['cluster']['server']\n"
        "print(json.dumps({'kind': 'ExecCredential', 'status': "
        "{'token': token, 'expirationTimestamp': '2030-01-01T00:00:00Z'}}))\n"
    )
    plugin.chmod(plugin.stat().st_mode | stat.S_IEXEC)
    user = {
        "exec": {
            "apiVersion": "client.authentication.k8s.io/v1",
            "command": sys.executable,
            "args": [str(plugin)],
            "env": [{"name": "PREFIX", "value": "t-"}],
        }
    }
    found = from_kubeconfig(str(kubeconfig(tmp_path / "b.yaml", user)))
    assert found.token == "t-https://10.0.0.1:6443" and found.expiration is not None
    assert found.expiration.year == 2030


def test_an_exec_plugins_credential_is_reused_until_a_401(tmp_path: Path) -> None:
    """As kubectl: a plugin (e.g. `aws eks get-token`) is not run for every request or every re-read."""
    runs = tmp_path / "runs"
    plugin = ["-c", f"open({str(runs)!r}, 'a').write('x'); print('{{\"status\": {{\"token\": \"t\"}}}}')"]
    config = str(kubeconfig(tmp_path / "c.yaml", {"exec": {"command": sys.executable, "args": plugin}}))
    assert [from_kubeconfig(config).token for _ in range(3)] == ["t", "t", "t"]
    assert runs.read_text() == "x", "one run for three reads"
    assert from_kubeconfig(config, fresh=True).token == "t" and runs.read_text() == "xx"


def test_an_unusable_kubeconfig_says_why(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="auth-provider"):
        from_kubeconfig(str(kubeconfig(tmp_path / "a.yaml", {"auth-provider": {"name": "gcp"}})))
    with pytest.raises(ConfigError, match="no usable kubeconfig context"):
        from_kubeconfig(str(tmp_path / "absent.yaml"))
    failing = {"exec": {"command": sys.executable, "args": ["-c", "import sys; sys.exit('expired SSO')"]}}
    with pytest.raises(ConfigError, match="expired SSO"):
        from_kubeconfig(str(kubeconfig(tmp_path / "b.yaml", failing)))


@pytest.fixture
def api_server() -> Iterator[tuple[str, dict[str, Any]]]:
    """A real HTTP server that accepts only the current token, as an API server does once a pod's
    projected token was rotated."""
    state: dict[str, Any] = {"token": "new", "seen": []}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            state["seen"].append(self.headers.get("Authorization"))
            ok = self.headers.get("Authorization") == f"Bearer {state['token']}"
            body = json.dumps({"kind": "Namespace"} if ok else {"kind": "Status", "code": 401}).encode()
            self.send_response(200 if ok else 401)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}", state
    server.shutdown()


def test_a_rotated_token_is_read_again_after_a_401(
    tmp_path: Path, api_server: tuple[str, dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    url, state = api_server
    (tmp_path / "token").write_text("old")
    config = kubeconfig(tmp_path / "config.yaml", {"tokenFile": "token"}, {"server": url})
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    kube = Kube(kubeconfig=str(config))
    (tmp_path / "token").write_text("new")  # rotated after the operator read it
    assert kube.request("GET", "/api/v1/namespaces/ml") == {"kind": "Namespace"}
    assert state["seen"] == ["Bearer old", "Bearer new"]
    state["token"] = "newer"  # revoked, and nothing new to read: the 401 is the caller's
    with pytest.raises(ApiError) as refused:
        kube.request("GET", "/api/v1/namespaces/ml")
    assert refused.value.status == 401 and '"code": 401' in refused.value.body
