"""Reading and writing the artifact store by URI through fsspec (file://, s3://, http(s):// and
plain paths): bytes, JSON and content fingerprints. Shared by the local runner and the steps; tables
and Python objects are in steps/artifacts.py, which needs the data plane's libraries."""

from __future__ import annotations

import hashlib
import heapq
import json
import os
import re
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import fsspec
import fsspec.asyn
from fsspec.utils import glob_translate

from mlpipeline import parquet_footer
from mlpipeline.protocol import RESULT_FILE, is_pattern


class StepError(Exception):
    """A failure the user can act on; its message is what the status and the Event show."""


def join(uri: str, name: str) -> str:
    return uri.rstrip("/") + "/" + name


def filesystem(uri: str) -> tuple[fsspec.AbstractFileSystem, str]:
    fs, path = fsspec.core.url_to_fs(uri)
    return fs, path


def forget_listings(uri: str) -> None:
    """Drops what the file system of ``uri`` remembers of directory listings: fsspec keeps one
    instance per store, and s3fs would otherwise answer from listings made before a file landed."""
    fs, _ = filesystem(uri)
    fs.invalidate_cache()


def read_bytes(uri: str) -> bytes:
    try:
        with fsspec.open(uri, "rb") as handle:
            return handle.read()  # type: ignore[no-any-return]
    except FileNotFoundError:
        raise StepError(f"{uri}: no such file") from None
    except (OSError, ValueError, ImportError) as exc:
        raise StepError(f"cannot read {uri}: {exc}") from None


def write_bytes(uri: str, data: bytes) -> None:
    fs, path = filesystem(uri)
    parent = path.rsplit("/", 1)[0]
    if parent:
        fs.makedirs(parent, exist_ok=True)
    with fs.open(path, "wb") as handle:
        handle.write(data)


def read_json(uri: str) -> Any:
    return json.loads(read_bytes(uri))


def write_json(uri: str, value: Any) -> None:
    write_bytes(uri, json.dumps(value, indent=2, sort_keys=True, default=str).encode())


def finished(out: str) -> dict[str, Any] | None:
    """The result a step left in ``out`` when it succeeded there: that output may be reused."""
    try:
        result = read_json(join(out, RESULT_FILE))
    except (StepError, ValueError):
        return None
    return result if isinstance(result, dict) and result.get("ok") else None


def unfinish(out: str) -> None:
    """Removes the result of a step's earlier success from ``out`` before the step writes there
    again: an output half rewritten (a failure, a deleted pod) is then never taken as finished."""
    fs, path = filesystem(join(out, RESULT_FILE))
    try:
        fs.rm(path)
    except FileNotFoundError:
        pass
    except OSError as exc:
        raise StepError(f"cannot write {out}: {exc}") from None


@dataclass(frozen=True)
class Partition:
    uri: str
    version: str  # ETag, or size and modification time: changes when the content does
    modified: float | None = None  # seconds since the epoch


def _version(info: dict[str, Any]) -> str:
    modified = info.get("mtime") or info.get("LastModified")
    return str(info.get("ETag") or info.get("etag") or f"{info.get('size')}:{modified}")


def _modified(info: dict[str, Any]) -> float | None:
    value = info.get("mtime") or info.get("LastModified") or info.get("created")
    if isinstance(value, int | float):
        return float(value)
    return float(value.timestamp()) if isinstance(value, datetime) else None


def partitions(uri: str) -> list[Partition]:
    """The files a pattern matches, sorted by name (so ``month=2026-01`` comes before ``2026-02``)."""
    fs, path = filesystem(uri)
    scheme = uri.split("://", 1)[0] + "://" if "://" in uri else ""
    try:
        forget_listings(uri)
        found = fs.glob(path, detail=True)
    except (OSError, ValueError) as exc:
        raise StepError(f"cannot list {uri}: {exc}") from None
    return [
        Partition(
            f"{scheme}{name}" if scheme and not name.startswith(scheme) else name,
            _version(info),
            _modified(info),
        )
        for name, info in sorted(found.items())
        if info.get("type") != "directory"
    ]


def _first_magic(path: str) -> int:
    return min((i for i in (path.find(c) for c in "*?[") if i >= 0), default=len(path))


def _keep_newest(
    heap: list[tuple[str, str, float | None]], item: tuple[str, str, float | None], keep: int
) -> None:
    if len(heap) < keep:
        heapq.heappush(heap, item)
    elif item[0] > heap[0][0]:
        heapq.heapreplace(heap, item)


def _past(deadline: float, uri: str, seconds: float) -> None:
    if time.monotonic() > deadline:
        raise StepError(f"cannot list {uri}: the listing took longer than {seconds:g}s (narrow the pattern)")


def bounded_partitions(uri: str, keep: int, seconds: float) -> tuple[list[Partition], int]:
    """The newest ``keep`` files by name that an s3:// or file:// pattern matches (sorted by name),
    and how many matched in all — streamed, so that at most ``keep`` are held however many the
    store holds, and given up (StepError) after ``seconds``. What the operator lists with its own
    credentials; ``partitions`` is the unbounded listing of the local runner and the steps."""
    deadline = time.monotonic() + seconds
    scheme = uri.split("://", 1)[0] if "://" in uri else ""
    fs, path = filesystem(uri)
    pattern = re.compile(glob_translate(path))
    heap: list[tuple[str, str, float | None]] = []
    matched = 0

    def seen(name: str, info: dict[str, Any]) -> None:
        nonlocal matched
        _past(deadline, uri, seconds)
        if name.endswith("/") or info.get("type") == "directory" or not pattern.match(name):
            return
        matched += 1
        _keep_newest(heap, (name, _version(info), _modified(info)), keep)

    try:
        if scheme == "s3" and hasattr(fs, "_iterdir"):
            bucket, _, key = path.partition("/")

            async def scan() -> None:
                try:
                    async for info in fs._iterdir(bucket, prefix=key[: _first_magic(key)], delimiter=""):
                        seen(info["name"], info)
                except StepError:
                    raise
                except Exception as exc:  # botocore's errors, as s3fs itself reports them (OSError)
                    from s3fs.errors import translate_boto_error

                    raise translate_boto_error(exc) from None

            fsspec.asyn.sync(fs.loop, scan)
        elif scheme == "file":
            root = path[: _first_magic(path)].rsplit("/", 1)[0] or "/"
            for folder, _, files in os.walk(root):
                _past(deadline, uri, seconds)
                for file in files:
                    name = os.path.join(folder, file)
                    try:
                        stat = os.stat(name)
                    except OSError:
                        continue  # gone since the folder was read
                    seen(name, {"mtime": stat.st_mtime, "size": stat.st_size})
        else:
            forget_listings(uri)
            for name, info in fs.glob(path, detail=True).items():
                seen(name, info)
    except StepError:
        raise
    except (OSError, ValueError) as exc:
        raise StepError(f"cannot list {uri}: {exc}") from None
    prefix = f"{scheme}://" if scheme else ""
    found = [
        Partition(name if name.startswith(prefix) else f"{prefix}{name}", version, modified)
        for name, version, modified in sorted(heap)
    ]
    return found, matched


def count_rows(uri: str, deadline: float | None = None) -> int:
    """Rows of a CSV (lines after the header, read in chunks) or Parquet file (its footer, read
    without a Parquet library: parquet_footer.py); past
    ``deadline`` (time.monotonic()), a StepError."""
    try:
        if uri.lower().endswith((".parquet", ".pq")):
            with fsspec.open(uri, "rb") as handle:
                return parquet_footer.row_count(handle)
        lines, last = 0, b"\n"
        with fsspec.open(uri, "rb", compression="infer") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                lines += chunk.count(b"\n")
                last = chunk[-1:]
                if deadline is not None and time.monotonic() > deadline:
                    raise StepError(f"cannot count the rows of {uri} in time")
        return max(lines + (last != b"\n") - 1, 0)
    except FileNotFoundError:
        raise StepError(f"{uri}: no such file") from None
    except (OSError, ValueError) as exc:
        raise StepError(f"cannot read {uri}: {exc}") from None


def fingerprint(uri: str, read: bool = True) -> str:
    """What identifies the content behind a URI: a hash of the bytes of local files (``read``, the
    local runner), else of the ETag or size and modification time of each object, which a listing
    gives without reading any (the ingest step in a cluster); for a pattern or a folder, of every
    file's name and version."""
    if is_pattern(uri):
        listing = [(p.uri, p.version) for p in partitions(uri)]
        return hashlib.sha256(json.dumps(listing).encode()).hexdigest()
    fs, path = filesystem(uri)
    try:
        if uri.endswith("/") or fs.isdir(path):  # a folder of images: every file under it
            return fingerprint(uri.rstrip("/") + "/**")
        info = None if read and "file" in fs.protocol else fs.info(path)
        if info is not None and _identifies(info):
            return hashlib.sha256(_version(info).encode()).hexdigest()
        # local bytes, or an object served with neither ETag nor date (some HTTP servers): read it
        digest = hashlib.sha256()
        with fs.open(path, "rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                digest.update(chunk)
        return digest.hexdigest()
    except FileNotFoundError:
        raise StepError(f"{uri}: no such file") from None
    except (OSError, ValueError) as exc:
        raise StepError(f"cannot read {uri}: {exc}") from None


def _identifies(info: dict[str, Any]) -> bool:
    """Whether an object's listing tells its content apart: an ETag or a modification time."""
    return any(info.get(k) for k in ("ETag", "etag", "mtime", "LastModified"))
