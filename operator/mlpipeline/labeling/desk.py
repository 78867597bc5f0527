"""Where people label: a Label Studio server (REST API), or files in the artifact store (Label
Studio's JSON import file written, its JSON export read back) where no server is given.

Posting is idempotent per round: a restarted step finds the round's tasks and posts nothing twice.
The token comes from $LABEL_STUDIO_API_KEY only, and never appears in a message."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, Protocol

import httpx

from mlpipeline import store
from mlpipeline.api.models import LabelingSpec
from mlpipeline.labeling import tasks as task_format
from mlpipeline.protocol import TOKEN_ENV
from mlpipeline.store import StepError

IMPORT_FILE = "label-studio-import.json"
EXPORT_FILE = "label-studio-export.json"
PAGE = 100


class Desk(Protocol):
    where: str  # what status.labeling.round.project shows

    def post(self, items: list[dict[str, Any]], classes: list[str], model: str) -> None: ...

    def collect(self, round_id: str) -> dict[int, str]: ...


@dataclass
class FileDesk:
    """The import file beside the round's other files; people put the export file next to it."""

    folder: str
    where: str = ""

    def __post_init__(self) -> None:
        self.where = store.join(self.folder, IMPORT_FILE)

    def post(self, items: list[dict[str, Any]], classes: list[str], model: str) -> None:
        store.write_json(self.where, items)
        store.write_bytes(
            store.join(self.folder, "label-config.xml"), task_format.label_config(classes).encode()
        )

    def collect(self, round_id: str) -> dict[int, str]:
        try:
            store.forget_listings(self.folder)  # the export lands while we wait
            exported = store.read_json(store.join(self.folder, EXPORT_FILE))
        except StepError:
            return {}  # not there yet
        if not isinstance(exported, list):
            raise StepError(f"{EXPORT_FILE}: expected Label Studio's JSON export (a list of tasks)")
        return task_format.answers(exported, round_id)


@dataclass
class StudioDesk:
    url: str
    title: str
    token: str | None
    timeout: float = 30.0
    where: str = ""
    _client: httpx.Client | None = None
    _project: int | None = None
    _headers: dict[str, str] = field(default_factory=dict)

    def client(self) -> httpx.Client:
        if self._client is None:
            self._client = httpx.Client(base_url=self.url.rstrip("/"), timeout=self.timeout)
            self._headers = self._authorization()
        return self._client

    def _authorization(self) -> dict[str, str]:
        if not self.token:
            return {}
        if self.token.count(".") == 2:  # a personal access token (a JWT refresh token)
            answer = self._call("POST", "/api/token/refresh", json={"refresh": self.token}, auth=False)
            return {"Authorization": f"Bearer {answer['access']}"}
        return {"Authorization": f"Token {self.token}"}

    def _call(self, method: str, path: str, auth: bool = True, **kwargs: Any) -> Any:
        client = self.client()
        try:
            response = client.request(method, path, headers=self._headers if auth else {}, **kwargs)
        except httpx.HTTPError as exc:
            raise StepError(f"Label Studio at {self.url} cannot be reached: {exc}") from None
        if response.status_code == 401 and auth and self.token and self.token.count(".") == 2:
            self._headers = self._authorization()  # the access token expired: refresh once
            response = client.request(method, path, headers=self._headers, **kwargs)
        if response.status_code >= 400:
            detail = response.text[:300].replace(self.token or "\0", "***")
            raise StepError(f"Label Studio {method} {path} answered {response.status_code}: {detail}")
        return response.json() if response.content else None

    def project(self, classes: list[str] | None = None, model: str | None = None) -> int:
        """The project titled ``title``, created (labeling interface of ``classes``) when missing."""
        if self._project is None:
            listed = self._call("GET", "/api/projects", params={"title": self.title, "page_size": PAGE})
            found = [
                p for p in _results(listed) if p.get("title") == self.title
            ]  # title= is a substring filter
            if found:
                self._project = int(found[0]["id"])
            elif classes is None:
                raise StepError(f"Label Studio has no project titled {self.title!r}")
            else:
                body = {"title": self.title, "label_config": task_format.label_config(classes)}
                created = self._call("POST", "/api/projects", json={**body, "model_version": model or ""})
                self._project = int(created["id"])
            self.where = f"{self.url.rstrip('/')}/projects/{self._project}"
        return self._project

    def listed(self, project: int) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        page = 1
        while True:
            answer = self._call(
                "GET",
                "/api/tasks",
                params={"project": project, "page": page, "page_size": PAGE, "fields": "all"},
            )
            items = answer.get("tasks", []) if isinstance(answer, dict) else answer
            out.extend(items)
            total = answer.get("total") if isinstance(answer, dict) else None
            if not items or len(items) < PAGE or (total is not None and len(out) >= total):
                return out
            page += 1

    def post(self, items: list[dict[str, Any]], classes: list[str], model: str) -> None:
        project = self.project(classes, model)
        if not items:
            return
        round_id = items[0]["data"]["mlp_round"]
        if not any((t.get("data") or {}).get("mlp_round") == round_id for t in self.listed(project)):
            self._call("POST", f"/api/projects/{project}/import", json=items)  # else: posted before a restart
        if any("predictions" in t for t in items):
            # The labeler sees pre-annotations of the project's model version only (Label Studio
            # #1035, #5009); it accepts a version once predictions of it exist.
            self._call("PATCH", f"/api/projects/{project}", json={"model_version": model})

    def collect(self, round_id: str) -> dict[int, str]:
        return task_format.answers(self.listed(self.project()), round_id)


def _results(listed: Any) -> list[dict[str, Any]]:
    return list(listed.get("results", [])) if isinstance(listed, dict) else list(listed or [])


def desk_for(spec: LabelingSpec, pipeline: str, folder: str) -> Desk:
    studio = spec.label_studio
    if studio is None:
        return FileDesk(folder)
    desk = StudioDesk(studio.url, studio.project or f"mlpipeline {pipeline}", os.environ.get(TOKEN_ENV))
    desk.where = studio.url
    return desk
