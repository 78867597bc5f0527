"""The run report: one HTML page in the artifact store (pictures embedded) that a person opens to see
how the run went — every trial's parameters against its score, the learning curves (per epoch for
the deep-learning families, per fold otherwise), and the gated model's confusion matrix on the test
split (classification) or its residuals (regression). Drawn with matplotlib."""

from __future__ import annotations

import base64
import html
import io
import json
from typing import Any

import numpy as np

REPORT = "report.html"


def _png(figure: Any) -> str:
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=90, bbox_inches="tight")
    plt.close(figure)
    return f'<img alt="" src="data:image/png;base64,{base64.b64encode(buffer.getvalue()).decode()}">'


def trials_figure(trials: list[dict[str, Any]], metric: str) -> str | None:
    import matplotlib.pyplot as plt

    done = [t for t in trials if t.get(metric) is not None]
    params = sorted({k for t in done for k, v in t["config"].items() if isinstance(v, int | float)})
    if not done or not params:
        return None
    figure, axes = plt.subplots(1, len(params), figsize=(3.2 * len(params), 3), squeeze=False)
    for axis, name in zip(axes[0], params, strict=True):
        stopped = [t for t in done if t.get("stoppedEarly")]
        complete = [t for t in done if not t.get("stoppedEarly")]
        for group, marker, label in ((complete, "o", "complete"), (stopped, "x", "stopped early")):
            axis.scatter(
                [t["config"].get(name) for t in group], [t[metric] for t in group], marker=marker, label=label
            )
        positive = [t["config"].get(name) for t in done if isinstance(t["config"].get(name), int | float)]
        if positive and min(positive) > 0 and max(positive) / min(positive) >= 100:
            axis.set_xscale("log")
        axis.set_xlabel(name)
        axis.set_ylabel(metric)
    axes[0][0].legend(fontsize="small")
    figure.suptitle("Trials: parameters against score")
    return _png(figure)


def curves_figure(trials: list[dict[str, Any]], metric: str, unit: str) -> str | None:
    import matplotlib.pyplot as plt

    curved = [t for t in trials if t.get("curve")]
    if not curved:
        return None
    figure, axis = plt.subplots(figsize=(6, 3.5))
    for index, trial in enumerate(curved):
        curve = trial["curve"]
        axis.plot(range(1, len(curve) + 1), curve, marker=".", label=f"trial {index}")
    axis.set_xlabel(unit)
    axis.set_ylabel(metric)
    axis.set_title(f"Learning curves ({metric} on held-out data, per {unit})")
    if len(curved) <= 12:
        axis.legend(fontsize="x-small", ncol=2)
    return _png(figure)


def confusion_figure(truth: np.ndarray, predicted: np.ndarray, classes: list[Any]) -> str:
    import matplotlib.pyplot as plt
    from sklearn.metrics import confusion_matrix

    matrix = confusion_matrix(truth, predicted, labels=list(range(len(classes))))
    size = max(3.5, 0.45 * len(classes) + 2)
    figure, axis = plt.subplots(figsize=(size, size))
    axis.imshow(matrix, cmap="Blues")
    axis.set_xticks(range(len(classes)), [str(c) for c in classes], rotation=45, ha="right")
    axis.set_yticks(range(len(classes)), [str(c) for c in classes])
    for (row, column), count in np.ndenumerate(matrix):
        axis.text(column, row, str(count), ha="center", va="center", fontsize="small")
    axis.set_xlabel("predicted")
    axis.set_ylabel("true")
    axis.set_title("Confusion matrix (test split)")
    return _png(figure)


def residuals_figure(truth: np.ndarray, predicted: np.ndarray) -> str:
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(5, 3.5))
    axis.scatter(predicted, truth - predicted, s=10)
    axis.axhline(0, color="grey", linewidth=1)
    axis.set_xlabel("predicted")
    axis.set_ylabel("true - predicted")
    axis.set_title("Residuals (test split)")
    return _png(figure)


def render(
    trials: list[dict[str, Any]],
    report: dict[str, Any],
    truth: np.ndarray,
    predicted: np.ndarray,
    classes: list[Any] | None,
) -> str:
    """The page: a summary, the pictures, and the trials as a table."""
    import matplotlib

    matplotlib.use("Agg")
    metric = next((k for t in trials for k in t if k not in _TRIAL_KEYS), report["gate"]["metric"])
    unit = "epoch" if any("epochs" in t for t in trials) else "fold"
    gate = report["gate"]
    verdict = "passed" if gate["passed"] else "failed"
    figures = [
        trials_figure(trials, metric),
        curves_figure(trials, metric, unit),
        confusion_figure(truth, predicted, classes)
        if classes is not None
        else residuals_figure(truth, predicted),
    ]
    rows = "".join(
        "<tr>"
        + f"<td>{i}</td><td><code>{html.escape(json.dumps(t.get('config', {}), sort_keys=True))}</code></td>"
        + f"<td>{_number(t.get(metric))}</td><td>{t.get(unit + 's', '')}</td>"
        + f"<td>{'yes' if t.get('stoppedEarly') else ''}</td><td>{html.escape(str(t.get('error', '')))}</td>"
        + "</tr>"
        for i, t in enumerate(trials)
    )
    metrics = "".join(f"<li>{html.escape(k)}: {_number(v)}</li>" for k, v in report["metrics"].items())
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>Run report</title>
<style>body{{font-family:sans-serif;margin:2em;max-width:1100px}}td,th{{padding:2px 8px;text-align:left}}
tr:nth-child(even){{background:#f4f4f4}}img{{max-width:100%;margin:1em 0}}</style></head><body>
<h1>Run report</h1>
<p>Gate {verdict}: {html.escape(gate["metric"])} = {_number(report["metrics"].get(gate["metric"]))}
(min {gate.get("min")}, max {gate.get("max")}), on {report["testRows"]} held-out rows{_auto(report)}.
Best parameters: <code>{html.escape(json.dumps(report["params"], sort_keys=True))}</code>
{html.escape(compared(report.get("baseline")))}</p>
<ul>{metrics}</ul>
{"".join(f for f in figures if f)}
<h2>Trials</h2>
<table><tr><th>#</th><th>parameters</th><th>{html.escape(metric)}</th><th>{unit}s</th><th>stopped early</th>
<th>error</th></tr>{rows}</table>
</body></html>
"""


_TRIAL_KEYS = {"config", "curve", "epochs", "folds", "id", "stoppedEarly", "seconds", "error"}


def _auto(report: dict[str, Any]) -> str:
    """Rows labeled by the model itself in labeling rounds: trained on, never scored."""
    count = int(report.get("autoLabels") or 0)
    return f" ({count} rows labeled by the model itself were trained on, never scored)" if count else ""


def compared(baseline: dict[str, Any] | None) -> str:
    """The comparison with the model that served (steps/baseline.py), in words; "" without one."""
    if not baseline or not baseline.get("rows"):
        return ""
    scores = f"{_number(baseline.get('score'))} -> {_number(baseline.get('candidateScore'))}"
    text = f"; beside the serving {baseline['version']} on {baseline['rows']} held-out rows neither "
    text += f"trained on, {baseline['metric']} {scores}"
    shift = baseline.get("predictionShift")
    return text + (f", prediction shift {shift:.3g}" if shift is not None else "")


def _number(value: Any) -> str:
    return f"{value:.4f}" if isinstance(value, int | float) else html.escape(str(value))
