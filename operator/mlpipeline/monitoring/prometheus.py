"""A small Prometheus HTTP API client: instant queries."""

from __future__ import annotations

import functools
from typing import Any

import httpx


class PrometheusError(Exception):
    pass


@functools.lru_cache(maxsize=32)
def client(url: str) -> Prometheus:
    """One client (and its connection pool) per Prometheus, shared by every pipeline using it."""
    return Prometheus(url)


class Prometheus:
    def __init__(self, url: str, timeout: float = 5.0):
        self.url = url.rstrip("/")
        self.client = httpx.Client(timeout=timeout)

    def query(self, promql: str) -> list[dict[str, Any]]:
        """The result vector of an instant query: [{"metric": {...}, "value": [t, "v"]}, ...]."""
        try:
            response = self.client.get(f"{self.url}/api/v1/query", params={"query": promql})
        except httpx.HTTPError as exc:
            raise PrometheusError(f"cannot reach Prometheus at {self.url}: {exc}") from None
        body = (
            response.json() if response.headers.get("content-type", "").startswith("application/json") else {}
        )
        if response.status_code != 200 or body.get("status") != "success":
            raise PrometheusError(
                f"query failed ({response.status_code}): {body.get('error', response.text[:200])}"
            )
        return list(body["data"]["result"])

    def scalar(self, promql: str) -> float | None:
        """The single value of a query, or None when it returns nothing or NaN (no data)."""
        result = self.query(promql)
        if not result:
            return None
        value = float(result[0]["value"][1])
        return None if value != value else value  # NaN: a ratio of zero requests

    def by_label(self, promql: str, label: str) -> dict[str, float]:
        return {r["metric"].get(label, ""): float(r["value"][1]) for r in self.query(promql)}
