"""The chart's Grafana dashboard against a real Prometheus (Debian's, make prometheus) scraping the
operator of these tests: every panel's PromQL is accepted, and the operator's panels show the
pipeline the test runs — its phase, its steps' durations, its canary's weight. The serving and
drift panels read model-server metrics, which kwok's simulated pods do not have: there, the query
is checked, not the data (the real tier's Prometheus scrapes real model pods)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from mlpipeline.local.prometheus import LocalPrometheus
from mlpipeline.monitoring.prometheus import Prometheus

from tests.cluster.conftest import Operator, kubectl, wait_for
from tests.cluster.test_operator import apply, manifest, phase_is
from tests.conftest import ROOT

DASHBOARD = ROOT / "charts" / "mlpipeline-operator" / "dashboards" / "mlpipeline.json"
OPERATOR_PANELS = {"Pipelines by phase", "Step duration (p90, last hour)", "Reconciliations", "Canary weight"}


def panels() -> dict[str, list[str]]:
    document: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return {p["title"]: [t["expr"] for t in p["targets"]] for p in document["panels"]}


def test_every_panel_query_runs_and_the_operator_panels_show_the_pipeline(
    operator: Operator, namespace: str, tmp_path: Path
) -> None:
    scrape = f"""  - job_name: mlpipeline-operator
    static_configs:
      - targets: ["127.0.0.1:{operator.metrics_port}"]
"""
    prometheus = LocalPrometheus(tmp_path, scrape_interval="1s", scrape_configs=scrape).start()
    try:
        slow = {"steps": [10, 50], "interval": "10m", "analysis": {"interval": "1s", "noData": "pass"}}
        apply(namespace, manifest(serve={"canary": slow}))
        wait_for("stable", lambda: phase_is(namespace, "Serving"), timeout=180)
        kubectl("annotate", "-n", namespace, "mlpipeline/iris", "mlpipeline.dev/rerun=2")
        wait_for("the canary", lambda: phase_is(namespace, "Canary"), timeout=180)
        api = Prometheus(prometheus.url)
        weight = f'mlpipeline_operator_canary_weight{{namespace="{namespace}",pipeline="iris"}}'
        assert wait_for("the canary's weight scraped", lambda: api.scalar(weight), timeout=30) == 10
        queries = panels()
        assert set(queries) >= OPERATOR_PANELS
        for title, expressions in queries.items():
            for expression in expressions:
                result = api.query(expression)  # raises on a query Prometheus refuses
                if title in OPERATOR_PANELS:
                    assert result, f"{title}: {expression} returned nothing"
        phases = {
            r["metric"]["phase"]: float(r["value"][1]) for r in api.query(queries["Pipelines by phase"][0])
        }
        assert phases.get("Canary", 0) >= 1
        steps = {r["metric"]["step"] for r in api.query(queries["Step duration (p90, last hour)"][0])}
        assert {"ingest", "tune", "package"} <= steps
    finally:
        prometheus.stop()
