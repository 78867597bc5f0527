"""Reading and writing the artifact store by URI through fsspec (file://, s3://, http(s):// and
plain paths): bytes, JSON and content fingerprints. Shared by the local runner and the steps; tables
and Python objects are in steps/artifacts.py, which needs the data plane's libraries."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import fsspec


class StepError(Exception):
    """A failure the user can act on; its message is what the status and the Event show."""


def join(uri: str, name: str) -> str:
    return uri.rstrip("/") + "/" + name


def _fs(uri: str) -> tuple[fsspec.AbstractFileSystem, str]:
    fs, path = fsspec.core.url_to_fs(uri)
    return fs, path


def read_bytes(uri: str) -> bytes:
    try:
        with fsspec.open(uri, "rb") as handle:
            return handle.read()  # type: ignore[no-any-return]
    except FileNotFoundError:
        raise StepError(f"{uri}: no such file") from None
    except (OSError, ValueError, ImportError) as exc:
        raise StepError(f"cannot read {uri}: {exc}") from None


def write_bytes(uri: str, data: bytes) -> None:
    fs, path = _fs(uri)
    parent = path.rsplit("/", 1)[0]
    if parent:
        fs.makedirs(parent, exist_ok=True)
    with fs.open(path, "wb") as handle:
        handle.write(data)


def read_json(uri: str) -> Any:
    return json.loads(read_bytes(uri))


def write_json(uri: str, value: Any) -> None:
    write_bytes(uri, json.dumps(value, indent=2, sort_keys=True, default=str).encode())


def fingerprint(uri: str) -> str:
    """What identifies the content behind a URI: a hash of the bytes of local files, the ETag or
    size and modification time of remote objects."""
    fs, path = _fs(uri)
    try:
        if "file" in fs.protocol:
            digest = hashlib.sha256()
            with fs.open(path, "rb") as handle:
                for chunk in iter(lambda: handle.read(1 << 20), b""):
                    digest.update(chunk)
            return digest.hexdigest()
        info = fs.info(path)
    except FileNotFoundError:
        raise StepError(f"{uri}: no such file") from None
    except (OSError, ValueError) as exc:
        raise StepError(f"cannot read {uri}: {exc}") from None
    key = (
        info.get("ETag")
        or info.get("etag")
        or f"{info.get('size')}:{info.get('mtime') or info.get('LastModified')}"
    )
    return hashlib.sha256(str(key).encode()).hexdigest()
