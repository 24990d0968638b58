"""The report as one self-contained HTML file, rendered with jinja2 from the templates shipped
in this package (``templates/``): inline CSS, inline SVG charts, one inline script that only
adds sorting and filtering."""

from __future__ import annotations

import html as html_mod
import re
from collections import Counter
from functools import lru_cache

import jinja2
from markupsafe import Markup, escape

from . import charts, summaryform
from .controls import CRITERIA
from .model import Policies, Report
from .timeutil import human

# Above this many changes the population table starts closed (see the template).
BIG_TABLE = 3000
MIX_COLUMNS = ("authorized", "unauthorized", "unverified")
AUTH_CLASS = {"authorized": "pass", "unauthorized": "fail", "unverified": "warn"}
STATE_CLASS = {"open": "fail", "accepted": "warn", "resolved": "pass"}
REVERT_CLASS = {"reverted": "pass", "dry-run": "na", "failed": "fail"}
EMERGENCY_CLASS = {"approved": "pass", "pending": "warn", "resolved-otherwise": "fail"}


# Where a long object key or field path may wrap: after a separator followed by more text
# (``Deployment.apps shop/web``, ``spec.template.spec.containers[name=web].image``).
_SEPARATOR = re.compile(r"([/.,=\]])(?=\S)")


def wrap(value: object) -> Markup:
    """``value`` escaped, with a ``<wbr>`` after each separator: a narrow column breaks an
    object key or path there rather than in the middle of a name (copying it is unchanged)."""
    return Markup(_SEPARATOR.sub(r"\1<wbr>", str(escape(str(value)))))


_STAMP = re.compile(r"\b(\d{4}-\d{2}-\d{2})T(?=\d{2}:\d{2})")


def ts(value: object) -> Markup:
    """A UTC time (``2026-03-01T10:05:00Z``) that may wrap after its ``T`` but never inside
    the date or the time."""
    return Markup(_STAMP.sub(r'<span class="date">\1</span>T<wbr>', str(escape(str(value)))))


@lru_cache(maxsize=1)
def environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("auditor.report", "templates"),
        autoescape=True, trim_blocks=False, lstrip_blocks=False,
        undefined=jinja2.StrictUndefined)
    env.filters["wrap"] = wrap
    env.filters["ts"] = ts
    return env


def pct(value: float | None) -> str:
    return "—" if value is None else f"{value:.1f}%"


def _label(start: str, unit: str) -> str:
    return start[11:16] if unit == "hour" else start[5:10]


def chart_svgs(report: Report) -> dict[str, str]:
    buckets = report.buckets
    labels = [_label(b.start, report.bucket_label) for b in buckets]
    # Before the ledger's first run nothing was monitoring yet: those buckets count no missed
    # runs, as the coverage figures do (``monitoring.measured_from``).
    since = report.monitoring.measured_from
    ends = [b.start for b in buckets[1:]] + [report.header.period_end]
    runs = charts.stacked("Scheduled runs", labels, [
        ("covered", [b.covered_runs for b in buckets]),
        ("missed", [0 if since and end <= since else b.expected_runs - b.covered_runs
                    for b, end in zip(buckets, ends, strict=True)])])
    return {
        "score": charts.line("In-sync ratio", labels, [b.score for b in buckets]),
        "changes": charts.stacked("Changes", labels, [
            ("authorized", [b.authorized for b in buckets]),
            ("unauthorized", [b.unauthorized for b in buckets]),
            ("unverified", [b.unverified for b in buckets])]),
        "drift": charts.line("Unresolved drift", labels, [float(b.open_drifts) for b in buckets],
                             y_max=float(max([1, *(b.open_drifts for b in buckets)])), unit=""),
        # Covered green, missed red: the same classes as the other bar chart's s0/s1 except
        # that the first series is recoloured through the ``runs`` class.
        "runs": runs.replace('class="chart"', 'class="chart runs"', 1),
        "policy": policy_chart(report.policies),
    }


def policy_chart(policies: Policies) -> str:
    return charts.line("Policy score", [at[5:16].replace("T", " ") for at, _ in policies.scores],
                       [score for _, score in policies.scores])


def change_mix(report: Report) -> list[tuple[str, dict[str, int]]]:
    """Changes counted by actor category × authorization, categories in a fixed order."""
    mix: dict[str, Counter[str]] = {}
    for c in report.changes:
        mix.setdefault(c.category, Counter())[c.authorization] += 1
    order = ("human", "unknown", "controller", "gitops")
    return [(k, dict(mix[k])) for k in sorted(mix, key=lambda k: (
        order.index(k) if k in order else len(order), k))]


_CARD_TABLE = re.compile(r'(<table class="data[^"]*\bcards\b[^"]*"[^>]*>)(.*?)(</table>)', re.S)
_HEADER = re.compile(r"<th\b[^>]*>(.*?)</th>", re.S)
_ROW = re.compile(r"<tr\b.*?</tr>", re.S)
_CELL = re.compile(r"<td\b[^>]*>")
_TAG = re.compile(r"<[^>]+>")


def _labelled(match: re.Match[str]) -> str:
    """A ``cards`` table with every body cell labelled by its column header (``data-label``):
    on a phone each row becomes a card that names each value, with scripts on or off."""
    opening, inner, closing = match.groups()
    head, sep, body = inner.partition("</thead>")
    labels = [escape(html_mod.unescape(_TAG.sub("", h)).strip()) for h in _HEADER.findall(head)]
    if not sep or not labels:
        return match.group(0)

    def row(m: re.Match[str]) -> str:
        cells = iter(range(10**6))

        def cell(c: re.Match[str]) -> str:
            i = next(cells)
            tag = c.group(0)
            if "data-label" in tag or i >= len(labels):
                return tag
            return f'{tag[:3]} data-label="{labels[i]}"{tag[3:]}'
        return _CELL.sub(cell, m.group(0))

    return opening + head + sep + _ROW.sub(row, body) + closing


def label_cards(page: str) -> str:
    """Every ``table.cards`` of ``page`` with its cells labelled (see :func:`_labelled`)."""
    return _CARD_TABLE.sub(_labelled, page)


def render_html(report: Report) -> str:
    template = environment().get_template("report.html.j2")
    return label_cards(template.render(report=report, charts=chart_svgs(report), pct=pct, human=human,
                           criteria=CRITERIA, auth_class=AUTH_CLASS, state_class=STATE_CLASS,
                           revert_class=REVERT_CLASS, emergency_class=EMERGENCY_CLASS,
                           change_mix=change_mix(report), mix_columns=MIX_COLUMNS,
                           big_table=BIG_TABLE, rows=summaryform.shown(report),
                           fleet_rows=summaryform.FLEET_HTML_ROWS,
                           # A fleet report has a policy section (and chart) per cluster.
                           member_policy_charts=[policy_chart(m.policies) for m in report.fleet]))
