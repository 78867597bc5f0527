"""Generates the CustomResourceDefinition from the pydantic models (``make crds``)."""

from __future__ import annotations

import copy
from typing import Any

import yaml

from mlpipeline.api.models import (
    GROUP,
    KIND,
    PLURAL,
    VERSION,
    MLPipelineSpec,
    MLPipelineStatus,
)

_DROP = {"title", "additionalProperties"}


def _structural(node: Any, defs: dict[str, Any]) -> Any:
    """Inlines $refs and rewrites pydantic's JSON Schema into Kubernetes' structural subset."""
    if isinstance(node, list):
        return [_structural(item, defs) for item in node]
    if not isinstance(node, dict):
        return node
    if "$ref" in node:
        target = copy.deepcopy(defs[node["$ref"].rsplit("/", 1)[-1]])
        merged = {**target, **{k: v for k, v in node.items() if k != "$ref"}}
        return _structural(merged, defs)
    options = node.get("anyOf")
    if options is not None:
        non_null = [o for o in options if o.get("type") != "null"]
        rest = {k: v for k, v in node.items() if k != "anyOf"}
        if len(non_null) == 1:
            inner = _structural(non_null[0], defs)
            # `x: T | None = None`: absent means unset; null is not sent by kubectl.
            return _structural({**inner, **rest}, defs) if rest else inner
        return {**_structural(rest, defs), "x-kubernetes-preserve-unknown-fields": True}
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in _DROP or key == "$defs":
            continue
        if key == "properties":
            out[key] = {name: _structural(prop, defs) for name, prop in value.items()}
        elif key in ("items",):
            out[key] = _structural(value, defs)
        elif key == "default" and value is None:
            continue
        elif key in ("exclusiveMinimum", "exclusiveMaximum") and not isinstance(value, bool):
            # JSON Schema 2020 gives the bound; OpenAPI v3.0 wants the bound plus a flag.
            out["minimum" if key == "exclusiveMinimum" else "maximum"] = value
            out[key] = True
        else:
            out[key] = value
    if node.get("type") == "object" and isinstance(node.get("additionalProperties"), dict):
        out["additionalProperties"] = _structural(node["additionalProperties"], defs)
    if out.get("type") == "array" and "items" in out and out["items"] == {}:
        out["items"] = {"x-kubernetes-preserve-unknown-fields": True}
    untyped = not out.get("type") and not {"properties", "enum"} & out.keys()
    if untyped and not {"x-kubernetes-preserve-unknown-fields", "x-kubernetes-int-or-string"} & out.keys():
        out["x-kubernetes-preserve-unknown-fields"] = True
    if "enum" in out and "type" not in out:
        out["type"] = "string"
    if "pattern" in out and "type" not in out:
        out["type"] = "string"
    return out


def openapi_schema(model: type[Any]) -> dict[str, Any]:
    schema = model.model_json_schema(by_alias=True, mode="validation")
    return _structural(schema, schema.get("$defs", {}))  # type: ignore[no-any-return]


def _spec_schema() -> dict[str, Any]:
    schema = openapi_schema(MLPipelineSpec)
    # Integers in YAML for cpu/memory are fine: the API server stores them as given.
    resources = schema["properties"]["train"]["properties"]["resources"]["properties"]
    for field in ("cpu", "memory"):
        resources[field] = {
            "x-kubernetes-int-or-string": True,
            "pattern": resources[field]["pattern"],
            "default": resources[field]["default"],
            "description": resources[field]["description"],
        }
    return schema


def _status_schema() -> dict[str, Any]:
    schema = openapi_schema(MLPipelineStatus)
    # kopf keeps its own bookkeeping under status; unknown fields must survive.
    schema["x-kubernetes-preserve-unknown-fields"] = True
    return schema


def build_crd() -> dict[str, Any]:
    version = {
        "name": VERSION,
        "served": True,
        "storage": True,
        "subresources": {"status": {}},
        "additionalPrinterColumns": [
            {"name": "Phase", "type": "string", "jsonPath": ".status.phase"},
            {"name": "Model", "type": "string", "jsonPath": ".status.model.version"},
            {"name": "Metric", "type": "string", "jsonPath": ".status.model.metric"},
            {"name": "Score", "type": "number", "jsonPath": ".status.model.score"},
            {"name": "Canary", "type": "integer", "jsonPath": ".status.serving.canaryWeight"},
            {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
        ],
        "schema": {
            "openAPIV3Schema": {
                "type": "object",
                "description": "MLPipeline declares a whole machine-learning cycle: data, "
                "preprocessing, tuning, evaluation gate, serving with canary rollouts, retraining.",
                "required": ["spec"],
                "x-kubernetes-validations": [
                    {
                        "rule": "self.metadata.name.size() <= 40",
                        "message": "metadata.name must be at most 40 characters "
                        "(child Job names append run and step)",
                    }
                ],
                "properties": {
                    "apiVersion": {"type": "string"},
                    "kind": {"type": "string"},
                    "metadata": {"type": "object"},
                    "spec": _spec_schema(),
                    "status": _status_schema(),
                },
            }
        },
    }
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{PLURAL}.{GROUP}"},
        "spec": {
            "group": GROUP,
            "scope": "Namespaced",
            "names": {
                "kind": KIND,
                "plural": PLURAL,
                "singular": KIND.lower(),
                "shortNames": ["mlp"],
                "categories": ["ml"],
            },
            "versions": [version],
        },
    }


def render_crd() -> str:
    header = "# Generated by `make crds` from operator/mlpipeline/api/models.py. Do not edit.\n"
    return header + yaml.safe_dump(build_crd(), sort_keys=False, width=100)
