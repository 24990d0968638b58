"""Inline SVG charts for ``drift-auditor serve``'s overview, drawn on the server (no script):
the open drift at the end of each day, and the live changes per day by manager category.

Each chart is one ``<svg>`` with a ``viewBox`` (it scales to the page's width, desktop or
phone) and a ``<title>``; the legend is HTML beside it so it wraps on narrow screens. Every
text is escaped here (categories come from the configuration and the ledger).
"""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

from markupsafe import Markup

WIDTH, HEIGHT = 480, 170
LEFT, RIGHT, TOP, BOTTOM = 34, 8, 10, 24
# Manager categories first, then any other a configuration names, in a fixed order.
COLOURS = {"human": "#cf222e", "gitops": "#1a7f37", "controller": "#0969da",
           "operator": "#8250df", "unknown": "#8c959f"}
SPARE = ("#bc4c00", "#1b7c83", "#bf3989", "#6e7781", "#953800")


def colour(category: str, known: Sequence[str]) -> str:
    if category in COLOURS:
        return COLOURS[category]
    others = [c for c in known if c not in COLOURS]
    return SPARE[others.index(category) % len(SPARE)] if category in others else SPARE[0]


def _axis(top: int, dates: Sequence[str]) -> list[str]:
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    out = [f'<line x1="{LEFT}" y1="{TOP + plot_h}" x2="{WIDTH - RIGHT}" y2="{TOP + plot_h}" '
           'stroke="#8c959f" stroke-width="1"/>']
    for value in (0, top // 2 if top >= 2 else None, top):
        if value is None:
            continue
        y = TOP + plot_h - (plot_h * value / top if top else 0)
        out.append(f'<line x1="{LEFT}" y1="{y:.1f}" x2="{WIDTH - RIGHT}" y2="{y:.1f}" '
                   'stroke="#d1d9e0" stroke-width="0.5"/>')
        out.append(f'<text x="{LEFT - 4}" y="{y + 4:.1f}" text-anchor="end">{value}</text>')
    if dates:
        for n, anchor in ((0, "start"), (len(dates) // 2, "middle"), (len(dates) - 1, "end")):
            x = LEFT + plot_w * (n + 0.5) / len(dates)
            if anchor == "start":
                x = LEFT
            elif anchor == "end":
                x = WIDTH - RIGHT
            out.append(f'<text x="{x:.1f}" y="{HEIGHT - 6}" text-anchor="{anchor}">'
                       f'{escape(dates[n][5:])}</text>')
    return out


def _svg(title: str, body: list[str]) -> Markup:
    return Markup(
        f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
        f'preserveAspectRatio="xMidYMid meet" xmlns="http://www.w3.org/2000/svg">'
        f'<title>{escape(title)}</title>' + "".join(body) + "</svg>")


def open_drift(series: Sequence[tuple[str, int, int]]) -> Markup:
    """Stacked bars: open (red) and accepted (amber) drifts at the end of each day."""
    top = max([o + a for _, o, a in series] + [1])
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    step = plot_w / max(len(series), 1)
    body = _axis(top, [d for d, _, _ in series])
    for n, (date, n_open, n_accepted) in enumerate(series):
        x = LEFT + n * step + step * 0.15
        base = float(TOP + plot_h)
        for value, fill, what in ((n_open, "#cf222e", "open"),
                                  (n_accepted, "#bf8700", "accepted")):
            if not value:
                continue
            h = plot_h * value / top
            base -= h
            body.append(f'<rect x="{x:.1f}" y="{base:.1f}" width="{step * 0.7:.1f}" '
                        f'height="{h:.1f}" fill="{fill}"><title>{escape(date)}: {value} '
                        f'{what}</title></rect>')
    last = series[-1] if series else ("", 0, 0)
    return _svg(f"Open drift per day, last {len(series)} days; today {last[1]} open, "
                f"{last[2]} accepted", body)


def changes(series: Sequence[tuple[str, dict[str, int]]], categories: Sequence[str]) -> Markup:
    """Stacked bars: live changes per day, one colour per manager category."""
    top = max([sum(c.values()) for _, c in series] + [1])
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    step = plot_w / max(len(series), 1)
    body = _axis(top, [d for d, _ in series])
    for n, (date, counts) in enumerate(series):
        x = LEFT + n * step + step * 0.15
        base = float(TOP + plot_h)
        for category in categories:
            value = counts.get(category, 0)
            if not value:
                continue
            h = plot_h * value / top
            base -= h
            body.append(f'<rect x="{x:.1f}" y="{base:.1f}" width="{step * 0.7:.1f}" '
                        f'height="{h:.1f}" fill="{colour(category, categories)}"><title>'
                        f'{escape(date)}: {value} {escape(category)}</title></rect>')
    total = sum(sum(c.values()) for _, c in series)
    return _svg(f"Live changes per day by category, last {len(series)} days: {total}", body)
