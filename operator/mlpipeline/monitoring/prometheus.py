"""A small Prometheus HTTP API client: instant queries.

A reply is bounded (``max_bytes``, ``timeout`` for the whole exchange) and checked to be what
Prometheus answers; an error says what went wrong in its own words — the HTTP status, Prometheus's
error type, "not a Prometheus reply" — and never carries the reply's body, which ends up in a
pipeline's status (what an operator fetching a URL must not turn into a way of reading it)."""

from __future__ import annotations

import functools
import json
import math
import re
import time
from typing import Any

import httpx

MAX_REPLY_BYTES = 1 << 20  # the queries here return a few series: far below
TIMEOUT = 5.0  # seconds for one query, from connecting to the reply's last byte
# Prometheus's errorType values (web/api/v1): words of Prometheus's vocabulary, safe to repeat.
ERROR_TYPES = {"timeout", "canceled", "execution", "bad_data", "internal", "unavailable", "not_found"}


class PrometheusError(Exception):
    pass


LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")


def namespace_scope(label: str, namespace: str) -> str:
    """The matcher that keeps a query to one namespace's series (``label`` is the target label the
    scrape attaches from the pod's namespace, which a pod cannot set itself); empty when ``label``
    is (a Prometheus scraping only one namespace, or the laptop's)."""
    return f'{label}="{namespace}",' if label else ""


@functools.lru_cache(maxsize=32)
def client(url: str) -> Prometheus:
    """One client (and its connection pool) per Prometheus, shared by every pipeline using it."""
    return Prometheus(url)


class Prometheus:
    def __init__(self, url: str, timeout: float = TIMEOUT, max_bytes: int = MAX_REPLY_BYTES):
        self.url = url.rstrip("/")
        self.timeout = timeout
        self.max_bytes = max_bytes
        # No redirects (a 3xx is an answer, not a pointer to follow), no compression (its size is
        # what is bounded), each wait bounded and the whole exchange too (query()).
        self.client = httpx.Client(
            timeout=timeout, follow_redirects=False, headers={"accept-encoding": "identity"}
        )

    def _read(self, promql: str) -> tuple[int, bytes]:
        """The status code and at most ``max_bytes`` of the reply, within ``timeout`` in all."""
        deadline = time.monotonic() + self.timeout
        where = f"Prometheus at {self.url}"
        try:
            with self.client.stream("GET", f"{self.url}/api/v1/query", params={"query": promql}) as response:
                if response.headers.get("content-encoding", "identity") != "identity":
                    raise PrometheusError(f"{where}: not a Prometheus reply (HTTP {response.status_code})")
                declared = response.headers.get("content-length", "")
                if declared.isdigit() and int(declared) > self.max_bytes:
                    raise PrometheusError(f"{where}: the reply is larger than {self.max_bytes} bytes")
                body = bytearray()
                for chunk in response.iter_bytes():  # identity only: these are the bytes sent
                    body += chunk
                    if len(body) > self.max_bytes:
                        raise PrometheusError(f"{where}: the reply is larger than {self.max_bytes} bytes")
                    if time.monotonic() > deadline:
                        raise PrometheusError(f"{where} did not answer within {self.timeout:g}s")
                return response.status_code, bytes(body)
        except httpx.TimeoutException:
            raise PrometheusError(f"{where} did not answer within {self.timeout:g}s") from None
        except httpx.HTTPError as exc:
            # The exception's class only: some messages quote what the server sent.
            raise PrometheusError(f"cannot reach {where} ({type(exc).__name__})") from None

    def query(self, promql: str) -> list[dict[str, Any]]:
        """The result vector of an instant query: [{"metric": {...}, "value": [t, "v"]}, ...]."""
        status, raw = self._read(promql)
        where = f"Prometheus at {self.url}"
        try:
            body = json.loads(raw)
        except ValueError:
            body = None
        if not isinstance(body, dict) or body.get("status") not in ("success", "error"):
            raise PrometheusError(f"{where}: not a Prometheus reply (HTTP {status})")
        if status != 200 or body["status"] != "success":
            kind = body.get("errorType")
            said = f", {kind}" if kind in ERROR_TYPES else ""
            raise PrometheusError(f"{where} answered HTTP {status}{said}: query refused or failed")
        result = (body.get("data") or {}).get("result") if isinstance(body.get("data"), dict) else None
        if not isinstance(result, list) or not all(_is_sample(r) for r in result):
            raise PrometheusError(f"{where}: not a Prometheus reply (no instant vector)")
        return result

    def scalar(self, promql: str) -> float | None:
        """The single value of a query, or None when it returns nothing or NaN (no data)."""
        result = self.query(promql)
        if not result:
            return None
        value = float(result[0]["value"][1])
        return None if math.isnan(value) else value  # NaN: a ratio of zero requests

    def by_label(self, promql: str, label: str) -> dict[str, float]:
        return {r["metric"].get(label, ""): float(r["value"][1]) for r in self.query(promql)}


def _is_sample(item: Any) -> bool:
    """One sample of an instant vector: {"metric": {str: str}, "value": [time, "<float>"]}."""
    if not isinstance(item, dict) or not isinstance(item.get("metric"), dict):
        return False
    value = item.get("value")
    if not isinstance(value, list) or len(value) != 2 or not isinstance(value[1], str):
        return False
    try:
        float(value[1])
    except ValueError:
        return False
    return all(isinstance(k, str) and isinstance(v, str) for k, v in item["metric"].items())
