"""The JSON merge patch (RFC 7386) that turns one document into another: a key that the new
document lacks is sent as null, so the API server clears it instead of keeping a stale value."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any


def merge_patch(
    old: dict[str, Any], new: dict[str, Any], keys: Iterable[str] | None = None
) -> dict[str, Any]:
    """The patch from ``old`` to ``new``; with ``keys``, top-level keys outside it are left alone
    (fields that another writer owns)."""
    owned = set(keys) if keys is not None else set(old) | set(new)
    patch: dict[str, Any] = {}
    for key in owned:
        before, after = old.get(key), new.get(key)
        if key not in new:
            if key in old:
                patch[key] = None
        elif isinstance(before, dict) and isinstance(after, dict):
            nested = merge_patch(before, after)
            if nested:
                patch[key] = nested
        elif before != after or key not in old:
            patch[key] = after
    return patch


def apply_merge_patch(document: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    """What the API server does with a merge patch (used to check patches without a server)."""
    out = dict(document)
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        elif isinstance(value, dict):
            current = out.get(key)
            out[key] = apply_merge_patch(current if isinstance(current, dict) else {}, value)
        else:
            out[key] = value
    return out
