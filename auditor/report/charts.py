"""Trend charts as inline SVG: no script, no network, scales to the page (``viewBox``) and
prints. Colours come from CSS classes in the report's stylesheet so a print or dark style
can change them; every chart carries a ``<title>`` and an ``aria-label`` summary, and the
numbers behind it are in the report's tables.
"""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

W, H = 640, 180
LEFT, RIGHT, TOP, BOTTOM = 40, 8, 24, 28


def _frame(title: str, summary: str, body: list[str], labels: Sequence[str],
           y_max: float, y_unit: str) -> str:
    plot_w, plot_h = W - LEFT - RIGHT, H - TOP - BOTTOM
    parts = [f'<svg class="chart" viewBox="0 0 {W} {H}" role="img" '
             f'aria-label="{escape(summary)}" xmlns="http://www.w3.org/2000/svg">',
             f"<title>{escape(title)}</title>"]
    for frac in (0.0, 0.5, 1.0):
        y = TOP + plot_h * (1 - frac)
        value = y_max * frac
        text = f"{value:.0f}{y_unit}" if y_max >= 10 or frac == 0 else f"{value:.1f}{y_unit}"
        parts.append(f'<line class="grid" x1="{LEFT}" x2="{W - RIGHT}" y1="{y:.1f}" y2="{y:.1f}"/>')
        parts.append(f'<text class="axis" x="{LEFT - 4}" y="{y + 4:.1f}" '
                     f'text-anchor="end">{escape(text)}</text>')
    parts += body
    if labels:
        step = max(1, len(labels) // 6)
        for i in range(0, len(labels), step):
            x = LEFT + plot_w * (i + 0.5) / len(labels)
            # A label near the right edge is anchored at its end so it is not cut off.
            anchor = "end" if x > W - RIGHT - 24 else "middle"
            if anchor == "end":
                x = W - RIGHT
            parts.append(f'<text class="axis" x="{x:.1f}" y="{H - 8}" '
                         f'text-anchor="{anchor}">{escape(labels[i])}</text>')
    parts.append("</svg>")
    return "".join(parts)


def line(title: str, labels: Sequence[str], values: Sequence[float | None], *,
         y_max: float = 100.0, unit: str = "%") -> str:
    """A line over buckets; ``None`` breaks the line (no data in that bucket)."""
    plot_w, plot_h = W - LEFT - RIGHT, H - TOP - BOTTOM
    n = max(1, len(values))
    segments: list[list[tuple[float, float]]] = [[]]
    for i, v in enumerate(values):
        if v is None:
            if segments[-1]:
                segments.append([])
            continue
        x = LEFT + plot_w * (i + 0.5) / n
        y = TOP + plot_h * (1 - min(max(v, 0.0), y_max) / y_max)
        segments[-1].append((x, y))
    body = []
    for seg in segments:
        if len(seg) == 1:
            body.append(f'<circle class="s0" cx="{seg[0][0]:.1f}" cy="{seg[0][1]:.1f}" r="2.5"/>')
        elif seg:
            pts = " ".join(f"{x:.1f},{y:.1f}" for x, y in seg)
            body.append(f'<polyline class="l0" points="{pts}"/>')
    known = [v for v in values if v is not None]
    summary = (f"{title}: {len(known)} points, from {known[0]:.1f}{unit} to {known[-1]:.1f}{unit}, "
               f"lowest {min(known):.1f}{unit}" if known else f"{title}: no data")
    return _frame(title, summary, body, labels, y_max, unit)


def stacked(title: str, labels: Sequence[str], series: Sequence[tuple[str, Sequence[int]]]) -> str:
    """Stacked bars per bucket; ``series`` is ``[(name, values)]`` drawn bottom-up with the
    CSS classes ``s0``, ``s1``, ..."""
    plot_w, plot_h = W - LEFT - RIGHT, H - TOP - BOTTOM
    n = max(1, len(labels))
    totals = [sum(vals[i] for _, vals in series) for i in range(len(labels))]
    y_max = float(max([1, *totals]))
    bar_w = max(1.0, plot_w / n * 0.8)
    body = []
    for i in range(len(labels)):
        x = LEFT + plot_w * i / n + (plot_w / n - bar_w) / 2
        base = 0
        for s, (_name, vals) in enumerate(series):
            v = vals[i]
            if v <= 0:
                continue
            y0 = TOP + plot_h * (1 - (base + v) / y_max)
            h = plot_h * v / y_max
            body.append(f'<rect class="s{s}" x="{x:.1f}" y="{y0:.1f}" width="{bar_w:.1f}" '
                        f'height="{h:.1f}"><title>{escape(labels[i])}: {v} {escape(_name)}'
                        "</title></rect>")
            base += v
    legend_x = LEFT + 4
    for s, (name, vals) in enumerate(series):
        body.append(f'<rect class="s{s}" x="{legend_x}" y="4" width="10" height="10"/>'
                    f'<text class="legend" x="{legend_x + 14}" y="13">'
                    f"{escape(name)} ({sum(vals)})</text>")
        legend_x += 14 + 8 * (len(name) + len(str(sum(vals))) + 3)
    summary = f"{title}: " + ", ".join(f"{name} {sum(vals)}" for name, vals in series)
    return _frame(title, summary, body, labels, y_max, "")
