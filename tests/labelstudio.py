"""A real Label Studio server for the tests, in its own venv (``make label-studio``): started on a
free port with an empty data directory and an admin user, and a personal access token created the
way a person would (logged in, "Account & Settings" → "Personal Access Token")."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from mlpipeline.local.server import free_port

VERSION = "1.23.2"
HOME = Path(os.environ.get("MLP_CACHE", Path.home() / ".cache" / "mlpipeline")) / f"label-studio-{VERSION}"
BINARY = HOME / "bin" / "label-studio"
MIGRATED = HOME / "migrated-data"  # an empty data directory with its database migrated (make label-studio)
USER, PASSWORD = "labeler@example.com", "labeler-password-1"


@dataclass
class LabelStudio:
    url: str
    token: str  # a personal access token (a JWT refresh token)
    log: Path

    def url_for(self, host: str) -> str:
        return self.url.replace("127.0.0.1", host)

    def client(self) -> httpx.Client:
        access = httpx.post(f"{self.url}/api/token/refresh", json={"refresh": self.token}).json()["access"]
        return httpx.Client(base_url=self.url, headers={"Authorization": f"Bearer {access}"}, timeout=30)


def personal_access_token(url: str) -> str:
    with httpx.Client(base_url=url, timeout=30) as session:
        session.get("/user/login/")
        csrf = session.cookies["csrftoken"]
        login = session.post(
            "/user/login/",
            data={"email": USER, "password": PASSWORD, "csrfmiddlewaretoken": csrf},
            headers={"Referer": f"{url}/user/login/"},
        )
        assert login.status_code in (200, 302), login.text[:300]
        created = session.post(
            "/api/token/", headers={"X-CSRFToken": session.cookies["csrftoken"], "Referer": f"{url}/"}
        )
        assert created.status_code in (200, 201), created.text[:300]
        return str(created.json()["token"])


def start(folder: Path) -> Iterator[LabelStudio]:
    """Listens on every address: the tests reach it on the loopback, real pods on the host's."""
    assert BINARY.exists(), f"{BINARY} is missing: run `make label-studio`"
    port = free_port()
    log = folder / "label-studio.log"
    if MIGRATED.is_dir():  # saves the minute of migrations a fresh data directory takes
        shutil.copytree(MIGRATED, folder / "data")
    env = {
        **os.environ,
        "LABEL_STUDIO_BASE_DATA_DIR": str(folder / "data"),
        "LABEL_STUDIO_USERNAME": USER,
        "LABEL_STUDIO_PASSWORD": PASSWORD,
        "LATEST_VERSION_CHECK": "false",  # no call to PyPI at start
        "SENTRY_DSN": "",
        "FRONTEND_SENTRY_DSN": "",
    }
    with log.open("wb") as out:
        process = subprocess.Popen(
            # --host is the public URL; --internal-host is the address it listens on
            [str(BINARY), "start", "--no-browser", "--internal-host", "0.0.0.0", "--port", str(port)],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 300
        while True:
            assert process.poll() is None, f"Label Studio exited: {log.read_text()[-2000:]}"
            try:
                if httpx.get(f"{url}/health", timeout=2).json().get("status") == "UP":
                    break
            except (httpx.HTTPError, ValueError):
                pass
            assert time.monotonic() < deadline, f"Label Studio did not answer: {log.read_text()[-2000:]}"
            time.sleep(0.5)
        yield LabelStudio(url, personal_access_token(url), log)
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)


def answer_as_a_person(
    client: httpx.Client, title: str, expected: int, truth: list[str], model: str, timeout: float = 600
) -> dict[str, Any]:
    """Waits for ``expected`` tasks in the project ``title``, checks what the labeler sees (the
    record; the model's guess with its version and score on uncertain records, none on audits) and
    answers each from ``truth`` (by the task's row). Returns the tasks seen by kind and the project."""
    deadline = time.monotonic() + timeout
    while True:
        projects = client.get("/api/projects", params={"title": title}).json()["results"]
        project = next((p for p in projects if p["title"] == title), None)
        listed: list[dict[str, Any]] = []
        if project:
            params = {"project": project["id"], "fields": "all", "page_size": 1000}
            listed = client.get("/api/tasks", params=params).json()["tasks"]
        if len(listed) >= expected:
            break
        assert time.monotonic() < deadline, f"{len(listed)} of {expected} tasks arrived in Label Studio"
        time.sleep(2)
    assert project is not None
    seen: dict[str, Any] = {
        "human": 0,
        "audit": 0,
        "project": client.get(f"/api/projects/{project['id']}").json(),
    }
    for task in listed:
        data = task["data"]
        seen[data["mlp_kind"]] += 1
        assert data["text"].startswith("load: ")
        if data["mlp_kind"] == "human":
            (guess,) = task["predictions"]
            assert guess["model_version"] == model and 0.5 <= guess["score"] < 1
        else:
            assert task["predictions"] == []
        choice = {"choices": [truth[int(data["mlp_row"])]]}
        result = [{"from_name": "label", "to_name": "record", "type": "choices", "value": choice}]
        made = client.post(f"/api/tasks/{task['id']}/annotations", json={"result": result})
        assert made.status_code == 201, made.text
    return seen
