"""Where the API server is and how to authenticate to it — from a pod's service account, else from a
kubeconfig — and the HTTP transport the operator's requests and watches go through.

The kubernetes client library is not used for this: importing it costs the operator about 18 MB
resident (its thousand generated models) and 0.7 s at start, for what is here a few dozen lines.
What a kubeconfig can ask for is supported: a bearer token (inline or a file), client certificates
and CAs (files, relative to the kubeconfig, or inline data), an exec credential plugin (EKS, GKE,
OIDC helpers), basic auth, and skipping TLS verification.
"""

from __future__ import annotations

import json
import os
import subprocess
import threading
import time
import urllib.parse
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import kopf
import urllib3
import yaml

SERVICE_ACCOUNT = Path("/var/run/secrets/kubernetes.io/serviceaccount")
TOKEN_REREAD_SECONDS = 60.0  # a pod's projected token is rotated by the kubelet


class ConfigError(Exception):
    """Neither a service account nor a usable kubeconfig."""


class ApiError(Exception):
    """A response of the API server outside 2xx: its status code, reason and body (a Status object)."""

    def __init__(self, status: int, reason: str, body: str = ""):
        super().__init__(f"{status} {reason}: {body[:300]}")
        self.status, self.reason, self.body = status, reason, body


def in_cluster(account: Path = SERVICE_ACCOUNT) -> kopf.ConnectionInfo | None:
    """The pod's own service account, the API server by the address Kubernetes puts in every pod's
    environment (no cluster DNS needed)."""
    host, port = os.environ.get("KUBERNETES_SERVICE_HOST"), os.environ.get("KUBERNETES_SERVICE_PORT")
    token = account / "token"
    if not (host and port and token.exists()):
        return None
    host = f"[{host}]" if ":" in host else host
    namespace = account / "namespace"
    return kopf.ConnectionInfo(
        server=f"https://{host}:{port}",
        ca_path=str(account / "ca.crt") if (account / "ca.crt").exists() else None,
        token=token.read_text().strip(),
        default_namespace=namespace.read_text().strip() if namespace.exists() else None,
    )


def _kubeconfig_paths(kubeconfig: str | None) -> list[Path]:
    value = kubeconfig or os.environ.get("KUBECONFIG") or str(Path.home() / ".kube" / "config")
    return [Path(p).expanduser() for p in value.split(os.pathsep) if p]


def _merged(paths: list[Path]) -> tuple[str | None, dict[str, dict[str, Any]]]:
    """The current context and the named entries of several kubeconfigs, the first one winning (as
    kubectl merges them); each entry remembers its file's directory, for relative paths."""
    current: str | None = None
    named: dict[str, dict[str, Any]] = {"contexts": {}, "clusters": {}, "users": {}}
    for path in paths:
        if not path.exists():
            continue
        config = yaml.safe_load(path.read_text()) or {}
        current = current or config.get("current-context")
        for section, field in (("contexts", "context"), ("clusters", "cluster"), ("users", "user")):
            for item in config.get(section) or []:
                entry = {**(item.get(field) or {}), "__dir__": path.parent}
                named[section].setdefault(item["name"], entry)
    return current, named


def _file(entry: Mapping[str, Any], key: str) -> str | None:
    value = entry.get(key)
    return str(Path(entry["__dir__"], value)) if value else None


_issued: dict[str, dict[str, Any]] = {}  # each exec plugin's last credential, by its command and server


def _expires_soon(expiry: datetime | None) -> bool:
    """Within a minute (a naive time is UTC, as kopf reads it)."""
    if expiry is None:
        return False
    aware = expiry if expiry.tzinfo else expiry.replace(tzinfo=UTC)
    return (aware - datetime.now(UTC)).total_seconds() < 60


def exec_credential(plugin: Mapping[str, Any], server: str, fresh: bool = False) -> dict[str, Any]:
    """Runs a kubeconfig's exec plugin (client.authentication.k8s.io) and returns its status: a token
    or a client certificate, maybe with an expiration. As kubectl does, the credential is reused
    until it expires (or, with none, until ``fresh``: after a 401)."""
    cache_key = json.dumps([plugin, server], sort_keys=True)
    cached = _issued.get(cache_key)
    if cached is not None and not fresh and not _expires_soon(_expiry(cached.get("expirationTimestamp"))):
        return cached
    env = {**os.environ, **{e["name"]: e["value"] for e in plugin.get("env") or []}}
    request = {
        "apiVersion": plugin.get("apiVersion", "client.authentication.k8s.io/v1"),
        "kind": "ExecCredential",
        "spec": {"interactive": False, "cluster": {"server": server}},
    }
    env["KUBERNETES_EXEC_INFO"] = json.dumps(request)
    try:
        done = subprocess.run(
            [plugin["command"], *(plugin.get("args") or [])],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    except OSError as exc:
        raise ConfigError(f"the kubeconfig's exec plugin {plugin['command']!r} cannot run: {exc}") from exc
    if done.returncode != 0:
        raise ConfigError(f"the kubeconfig's exec plugin {plugin['command']!r} failed: {done.stderr.strip()}")
    status: dict[str, Any] = json.loads(done.stdout).get("status") or {}
    _issued[cache_key] = status
    return status


def _expiry(stamp: str | None) -> datetime | None:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")) if stamp else None


def from_kubeconfig(
    kubeconfig: str | None = None, context: str | None = None, fresh: bool = False
) -> kopf.ConnectionInfo:
    """The connection of a kubeconfig's current (or named) context (``fresh``: see exec_credential)."""
    paths = _kubeconfig_paths(kubeconfig)
    current, named = _merged(paths)
    name = context or current
    if not name or name not in named["contexts"]:
        where = os.pathsep.join(str(p) for p in paths)
        raise ConfigError(f"no service account and no usable kubeconfig context ({name!r} in {where})")
    ctx = named["contexts"][name]
    cluster, user = named["clusters"].get(ctx.get("cluster"), {}), named["users"].get(ctx.get("user"), {})
    if not cluster.get("server"):
        raise ConfigError(f"kubeconfig context {name!r}: its cluster has no server")
    token, expiration = user.get("token"), None
    cert_path, cert_data = _file(user, "client-certificate"), user.get("client-certificate-data")
    key_path, key_data = _file(user, "client-key"), user.get("client-key-data")
    if user.get("tokenFile"):
        token = Path(str(_file(user, "tokenFile"))).read_text().strip()
    if user.get("exec"):
        status = exec_credential(user["exec"], cluster["server"], fresh)
        token, expiration = status.get("token") or token, _expiry(status.get("expirationTimestamp"))
        if status.get("clientCertificateData"):
            cert_path, cert_data = None, status["clientCertificateData"]
            key_path, key_data = None, status.get("clientKeyData")
    if user.get("auth-provider"):
        raise ConfigError(
            f"kubeconfig user of context {name!r} uses an auth-provider (removed from kubectl in 1.26): "
            "use its exec credential plugin instead"
        )
    return kopf.ConnectionInfo(
        server=cluster["server"],
        ca_path=_file(cluster, "certificate-authority"),
        ca_data=cluster.get("certificate-authority-data"),
        insecure=bool(cluster.get("insecure-skip-tls-verify")),
        certificate_path=cert_path,
        certificate_data=cert_data,
        private_key_path=key_path,
        private_key_data=key_data,
        username=user.get("username"),
        password=user.get("password"),
        token=token,
        default_namespace=ctx.get("namespace"),
        proxy_url=cluster.get("proxy-url"),
        expiration=expiration,
    )


def load_connection(kubeconfig: str | None = None, fresh: bool = False) -> kopf.ConnectionInfo:
    """In a pod, its service account; elsewhere (or given a kubeconfig) the kubeconfig's context;
    ``fresh`` after a 401 (an exec plugin is asked again even if its credential has not expired)."""
    found = None if kubeconfig else in_cluster()
    return found or from_kubeconfig(kubeconfig, fresh=fresh)


def _stale(info: kopf.ConnectionInfo, loaded: float) -> bool:
    if info.expiration is not None:
        return _expires_soon(info.expiration)
    return time.monotonic() - loaded > TOKEN_REREAD_SECONDS


class Transport:
    """HTTP to the API server through one urllib3 pool (thread-safe), with the connection's TLS and
    credentials; the credentials are read again when they may have changed (a rotated token, an
    exec plugin's expiring one) and after a 401."""

    def __init__(self, connection: kopf.ConnectionInfo | None = None, kubeconfig: str | None = None):
        self.kubeconfig = kubeconfig
        self.reloadable = connection is None
        self.lock = threading.Lock()
        self.tls: tuple[Any, ...] | None = None
        self._use(connection or load_connection(kubeconfig))

    def _use(self, info: kopf.ConnectionInfo) -> None:
        """Takes (new) credentials; a new pool only when what TLS uses changed (an exec plugin's
        client certificate), so that a rotated token keeps the open connections."""
        self.info, self.loaded, self.server = info, time.monotonic(), info.server.rstrip("/")
        tls: tuple[Any, ...] = (info.server, info.proxy_url, info.insecure, info.ca_path, info.ca_data)
        tls += (info.certificate_path, info.certificate_data, info.private_key_path, info.private_key_data)
        if tls == self.tls:
            return
        self.tls = tls
        pool: dict[str, Any] = {"num_pools": 4, "maxsize": 16, "retries": False}
        if self.server.startswith("https"):
            pool["ssl_context"] = info.as_ssl_context()
            if info.insecure:
                pool["cert_reqs"] = "CERT_NONE"
                pool["assert_hostname"] = False
        proxy = info.proxy_url
        self.pool = urllib3.ProxyManager(proxy, **pool) if proxy else urllib3.PoolManager(**pool)

    def _headers(self, refresh: bool = False) -> dict[str, str]:
        with self.lock:
            if self.reloadable and (refresh or _stale(self.info, self.loaded)):
                self._use(load_connection(self.kubeconfig, fresh=refresh))
            return self.info.as_http_headers()

    def open(
        self,
        method: str,
        path: str,
        query: list[tuple[str, str]] | None = None,
        body: bytes | None = None,
        content_type: str = "application/json",
        timeout: tuple[float, float] = (10, 120),
        stream: bool = False,
    ) -> urllib3.BaseHTTPResponse:
        """One request; raises ApiError on a status outside 2xx, ConnectionError when there was no
        answer. A streamed response must be released by the caller."""
        for attempt in (1, 2):
            headers = {"Accept": "application/json", "Content-Type": content_type}
            headers.update(self._headers(refresh=attempt == 2))
            url = self.server + path + (f"?{urllib.parse.urlencode(query)}" if query else "")
            try:
                response = self.pool.request(
                    method,
                    url,
                    body=body,
                    headers=headers,
                    timeout=urllib3.Timeout(connect=timeout[0], read=timeout[1]),
                    preload_content=not stream,
                    redirect=False,
                )
            except urllib3.exceptions.HTTPError as exc:
                raise ConnectionError(f"{method} {path}: {exc}") from exc
            if 200 <= response.status < 300:
                return response
            data = response.data if not stream else response.read()
            if stream:
                response.release_conn()
            if response.status == 401 and attempt == 1 and self.reloadable:
                continue  # credentials rotated since they were read: read them again, once
            raise ApiError(response.status, response.reason or "", data.decode("utf-8", "replace"))
        raise AssertionError("unreachable")
