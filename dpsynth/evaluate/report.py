"""A self-contained HTML evaluation report with inline SVG plots (renders with no network).

No external CSS, fonts, scripts or images: everything is inline, so the file can be opened
offline and attached to a review. Plots: 1-way marginal comparisons (real vs synthetic bars) for
tables, and a 2-D PCA view of real vs synthetic embeddings with the coverage score for texts.
Sections computed from real data carry a visible "not for publication" tag.
"""

from __future__ import annotations

import html
import json
from typing import Any, Mapping, Sequence

REAL_COLOUR = "#1f77b4"
SYNTH_COLOUR = "#ff7f0e"
DECISION_COLOUR = {"ship": "#2ca02c", "regenerate": "#e6a100", "reject": "#d62728"}


def _esc(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return _esc(value)


def bar_chart_svg(title: str, labels: Sequence[str], real: Sequence[float], synthetic: Sequence[float],
                  width: int = 420, height: int = 220) -> str:
    """Grouped bars (real, synthetic) per label, as an inline ``<svg>`` string."""
    n = max(1, len(labels))
    top = max([*real, *synthetic, 1e-9])
    plot_h, base_y, left = height - 70, height - 45, 30
    group_w = (width - left - 10) / n
    bar_w = max(1.0, group_w * 0.4)
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img">',
             f'<title>{_esc(title)}</title>',
             f'<text x="{width / 2}" y="14" text-anchor="middle" font-size="12">{_esc(title)}</text>',
             f'<line x1="{left}" y1="{base_y}" x2="{width - 10}" y2="{base_y}" stroke="#333"/>',
             f'<text x="2" y="{base_y - plot_h + 10}" font-size="9">{top:.2f}</text>']
    for i, label in enumerate(labels):
        x0 = left + i * group_w + group_w * 0.1
        for j, (values, colour) in enumerate(((real, REAL_COLOUR), (synthetic, SYNTH_COLOUR))):
            h = plot_h * values[i] / top
            parts.append(f'<rect x="{x0 + j * bar_w:.1f}" y="{base_y - h:.1f}" width="{bar_w:.1f}" '
                         f'height="{h:.1f}" fill="{colour}"><title>{_esc(label)}: '
                         f'{"real" if j == 0 else "synthetic"} {values[i]:.3f}</title></rect>')
        short = str(label)[:10]
        parts.append(f'<text x="{x0 + bar_w:.1f}" y="{base_y + 12}" font-size="8" text-anchor="end" '
                     f'transform="rotate(-35 {x0 + bar_w:.1f} {base_y + 12})">{_esc(short)}</text>')
    parts.append(_legend(width - 150, 24))
    parts.append("</svg>")
    return "".join(parts)


def _legend(x: float, y: float) -> str:
    return (f'<rect x="{x}" y="{y}" width="10" height="10" fill="{REAL_COLOUR}"/>'
            f'<text x="{x + 14}" y="{y + 9}" font-size="10">real holdout</text>'
            f'<rect x="{x + 80}" y="{y}" width="10" height="10" fill="{SYNTH_COLOUR}"/>'
            f'<text x="{x + 94}" y="{y + 9}" font-size="10">synthetic</text>')


def scatter_svg(title: str, real: Sequence[Sequence[float]], synthetic: Sequence[Sequence[float]],
                width: int = 420, height: int = 360) -> str:
    """Scatter of 2-D points (real vs synthetic) as an inline ``<svg>`` string."""
    points = [p for p in [*real, *synthetic]]
    xs = [p[0] for p in points] or [0.0]
    ys = [p[1] for p in points] or [0.0]
    x_lo, x_hi = min(xs), max(xs)
    y_lo, y_hi = min(ys), max(ys)
    sx = (width - 40) / ((x_hi - x_lo) or 1.0)
    sy = (height - 60) / ((y_hi - y_lo) or 1.0)
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img">',
             f'<title>{_esc(title)}</title>',
             f'<text x="{width / 2}" y="14" text-anchor="middle" font-size="12">{_esc(title)}</text>',
             f'<rect x="20" y="40" width="{width - 40}" height="{height - 60}" fill="none" stroke="#ccc"/>']
    for pts, colour in ((real, REAL_COLOUR), (synthetic, SYNTH_COLOUR)):
        for p in pts:
            cx = 20 + (p[0] - x_lo) * sx
            cy = height - 20 - (p[1] - y_lo) * sy
            parts.append(f'<circle cx="{cx:.1f}" cy="{cy:.1f}" r="2.5" fill="{colour}" fill-opacity="0.55"/>')
    parts.append(_legend(width - 170, 22))
    parts.append("</svg>")
    return "".join(parts)


def _private_tag(block: Mapping[str, Any]) -> str:
    if block.get("reads_private_data"):
        sources = ", ".join(block.get("sources", [])) or "real data"
        return (f' <span style="background:#fde2e2;color:#a00;padding:1px 6px;border-radius:3px;'
                f'font-size:11px">reads real data ({_esc(sources)}) - not for publication</span>')
    return (' <span style="background:#e2f5e2;color:#060;padding:1px 6px;border-radius:3px;'
            'font-size:11px">no real records read - publishable</span>')


def _findings(decision: Mapping[str, Any], marked: str = "findings", plain: str = "reasons") -> list[Mapping[str, Any]]:
    """The decision's marked reasons (or notes); a report without marks gets them all tagged as
    reading real data (the safe default)."""
    if marked in decision:
        return list(decision[marked])
    return [{"reason": text, "reads_private_data": True, "sources": []} for text in decision.get(plain, [])]


def _table(rows: Sequence[tuple[str, Any]]) -> str:
    body = "".join(f"<tr><td>{_esc(k)}</td><td>{_fmt(v)}</td></tr>" for k, v in rows)
    return f'<table>{body}</table>'


def _flatten(prefix: str, value: Any, out: list[tuple[str, Any]], depth: int = 0) -> None:
    if isinstance(value, Mapping) and depth < 3:
        for k, v in value.items():
            if k in ("reads_private_data", "sources", "indices", "leaked_ids"):
                continue
            _flatten(f"{prefix}.{k}" if prefix else str(k), v, out, depth + 1)
    elif isinstance(value, (list, tuple)) and len(value) > 6:
        out.append((prefix, f"[{len(value)} items]"))
    else:
        out.append((prefix, value if not isinstance(value, (list, tuple, Mapping)) else json.dumps(value)))


SECTIONS = (("privacy_claim", "Privacy claim (from the ledger)"), ("privacy_audit", "Privacy audit"),
            ("contamination", "Contamination"), ("utility", "Utility on the real holdout"),
            ("fidelity", "Fidelity (distribution distances)"), ("diversity", "Diversity"),
            ("distribution_shift", "Distribution shift"))


def render_html(report: Mapping[str, Any], plots: Mapping[str, Any] | None = None,
                title: str = "dpsynth evaluation report", max_marginal_plots: int = 12) -> str:
    """Render the evaluation ``report`` (and its ``plots`` data) as one self-contained HTML page."""
    plots = plots or {}
    decision = report.get("release_decision", {})
    verdict = decision.get("decision", "unknown")
    colour = DECISION_COLOUR.get(verdict, "#555")
    parts = ["<!DOCTYPE html><html><head><meta charset=\"utf-8\">",
             f"<title>{_esc(title)}</title><style>",
             "body{font-family:sans-serif;max-width:1000px;margin:20px auto;color:#222}",
             "table{border-collapse:collapse;margin:6px 0}td{border:1px solid #ddd;padding:2px 8px;"
             "font-size:13px}h2{border-bottom:1px solid #ccc}.plots svg{margin:4px}",
             "</style></head><body>", f"<h1>{_esc(title)}</h1>",
             f'<p style="font-size:20px">Release decision: <b style="color:{colour}">{_esc(verdict)}</b></p>',
             "<ul>" + "".join(f"<li>{_esc(f['reason'])}{_private_tag(f)}</li>" for f in _findings(decision)) + "</ul>",
             "".join(f"<p><i>Note: {_esc(n['reason'])}</i>{_private_tag(n)}</p>"
                     for n in _findings(decision, "note_findings", "notes")),
             f'<p style="background:#fff4d6;padding:8px">{_esc(report.get("notice", ""))}</p>']
    for key, heading in SECTIONS:
        block = report.get(key)
        if not isinstance(block, Mapping):
            continue
        rows: list[tuple[str, Any]] = []
        _flatten("", block, rows)
        parts.append(f"<h2>{_esc(heading)}{_private_tag(block)}</h2>{_table(rows)}")
    marginals = plots.get("marginals")
    if marginals:
        parts.append('<h2>1-way marginals: real holdout vs synthetic'
                     + _private_tag({"reads_private_data": True, "sources": ["real_holdout"]})
                     + '</h2><div class="plots">')
        for column, data in list(marginals.items())[:max_marginal_plots]:
            parts.append(bar_chart_svg(column, data["labels"], data["real"], data["synthetic"]))
        parts.append("</div>")
    embedding = plots.get("embedding_2d")
    if embedding:
        cov = embedding.get("coverage")
        label = f"embeddings (PCA), coverage {cov:.2f}" if isinstance(cov, float) else "embeddings (PCA)"
        parts.append('<h2>Embedding coverage'
                     + _private_tag({"reads_private_data": True, "sources": ["real_holdout"]})
                     + '</h2><div class="plots">' + scatter_svg(label, embedding["real"], embedding["synthetic"])
                     + "</div>")
    parts.append("<h2>Thresholds</h2>" + _table(list((decision.get("thresholds") or {}).items())))
    parts.append("</body></html>")
    return "\n".join(parts)
