"""Loading manifests and explaining why one is invalid, field path by field path."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from mlpipeline.api.models import MLPipeline, MLPipelineSpec


@dataclass(frozen=True)
class FieldError:
    path: str
    reason: str

    def __str__(self) -> str:
        return f"{self.path}: {self.reason}"


class ManifestError(Exception):
    """A manifest that cannot be used; ``errors`` names every offending field."""

    def __init__(self, source: str, errors: list[FieldError]):
        self.source = source
        self.errors = errors
        lines = "\n".join(f"  {e}" for e in errors)
        super().__init__(f"{source} is not a valid MLPipeline:\n{lines}")


def _path(loc: tuple[int | str, ...], prefix: str) -> str:
    out = prefix
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part not in ("function-after", "function-before") and not str(part).startswith(
            ("function-", "list[", "dict[", "constrained-")
        ):
            out += f".{part}" if out else str(part)
    return out or "(root)"


def field_errors(error: ValidationError, prefix: str = "") -> list[FieldError]:
    errors = []
    for item in error.errors():
        reason = item["msg"].removeprefix("Value error, ")
        if item["type"] == "extra_forbidden":
            reason = "unknown field"
        errors.append(FieldError(_path(tuple(item["loc"]), prefix), reason))
    return errors


def parse_manifest(document: Any, source: str = "manifest") -> MLPipeline:
    if not isinstance(document, dict):
        raise ManifestError(source, [FieldError("(root)", "expected a YAML mapping")])
    try:
        return MLPipeline.model_validate(document)
    except ValidationError as exc:
        raise ManifestError(source, field_errors(exc)) from None


def parse_spec(spec: Any, source: str = "spec") -> MLPipelineSpec:
    try:
        return MLPipelineSpec.model_validate(spec)
    except ValidationError as exc:
        raise ManifestError(source, field_errors(exc, "spec")) from None


def load_manifest(path: str | Path) -> MLPipeline:
    """Reads one MLPipeline from a YAML file (the first MLPipeline document in it)."""
    source = str(path)
    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise ManifestError(source, [FieldError("(file)", exc.strerror or str(exc))]) from None
    try:
        documents = [d for d in yaml.safe_load_all(text) if d is not None]
    except yaml.YAMLError as exc:
        raise ManifestError(source, [FieldError("(yaml)", str(exc).replace("\n", " "))]) from None
    if not documents:
        raise ManifestError(source, [FieldError("(root)", "the file holds no document")])
    pipelines = [d for d in documents if isinstance(d, dict) and d.get("kind") == "MLPipeline"]
    return parse_manifest(pipelines[0] if pipelines else documents[0], source)
