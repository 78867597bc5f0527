"""The drift report people look at: per feature, its distance and threshold, and the training and
served distributions side by side, bucket by bucket. One self-contained HTML page, no scripts."""

from __future__ import annotations

from html import escape

from mlpipeline.monitoring.drift import DriftReport, FeatureDrift

STYLE = """body{font:14px system-ui,sans-serif;margin:2em;color:#222}
table{border-collapse:collapse;margin:.5em 0 2em}td,th{padding:2px 8px;text-align:left}
.bar{display:inline-block;height:10px}.t{background:#4a7bd0}.s{background:#e07b39}
.drift{color:#b00020;font-weight:bold}"""


def _bars(feature: FeatureDrift) -> str:
    rows = []
    for bucket, training in feature.training.items():
        served = feature.served.get(bucket, 0.0)
        rows.append(
            f"<tr><td>{escape(bucket)}</td>"
            f'<td><span class="bar t" style="width:{training * 300:.0f}px"></span> {training:.1%}</td>'
            f'<td><span class="bar s" style="width:{served * 300:.0f}px"></span> {served:.1%}</td></tr>'
        )
    return "<table><tr><th>bucket</th><th>training</th><th>served</th></tr>" + "".join(rows) + "</table>"


def render(report: DriftReport, pipeline: str, version: str, threshold: float, at: str) -> str:
    if report.enough:
        summary = f"{report.samples} served samples; threshold {threshold:g} (Jensen-Shannon distance)"
    else:
        summary = f"not enough data: {report.samples} of the {report.min_samples} samples needed"
    sections = []
    for feature in report.features:
        if feature.value is None:
            verdict = "no data"
        else:
            drifted = feature.value > threshold
            verdict = f'<span class="{"drift" if drifted else ""}">{feature.value:.3f}</span>'
        sections.append(f"<h2>{escape(feature.name)}: {verdict}</h2>{_bars(feature)}")
    title = f"Drift of {escape(pipeline)} version {escape(version)}"
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{title}</title><style>{STYLE}</style>"
        f"</head><body><h1>{title}</h1><p>{escape(at)}: {escape(summary)}</p>"
        f"{''.join(sections)}</body></html>"
    )
