"""The operator's resident memory kept to what it holds. glibc's allocator gives threads arenas of
their own (up to eight per core) and keeps what was freed in each for reuse; the operator has a
dozen threads, and bursts of work (a restart reads every pipeline at once) leave most of a burst's
peak resident for good. Two arenas, and the freed pages handed back once a burst is over. Nothing
happens where the C library is not glibc."""

from __future__ import annotations

import ctypes
import logging
from typing import Any

log = logging.getLogger("mlpipeline.operator")
M_ARENA_MAX = -8  # mallopt's parameter, from glibc's malloc.h


def _glibc() -> Any | None:
    try:
        libc = ctypes.CDLL(None)
        return libc if hasattr(libc, "malloc_trim") and hasattr(libc, "mallopt") else None
    except OSError:
        return None


_libc = _glibc()


def limit_arenas(count: int = 2) -> None:
    """At most ``count`` malloc arenas for the whole process (before its threads start)."""
    if _libc is not None and not _libc.mallopt(M_ARENA_MAX, count):
        log.warning("mallopt(M_ARENA_MAX, %d) refused", count)


def release_freed() -> None:
    """Hands the pages of freed memory back to the system."""
    if _libc is not None:
        _libc.malloc_trim(0)
