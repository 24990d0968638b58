"""Compliance reports (SOC 2 style) for a period, from the ledger only.

    report = period.build(ledger_path, start, end, config)   # the model, read-only queries
    html.render_html(report)                                  # one self-contained page
    export.changes_csv(report.changes)                        # the population, SHA-256 in the HTML
    export.to_json(report)
    fleet.load_fleet([eu_path, us_path], start, end, config).report   # several ledgers merged

Modules: :mod:`.period` (the model from the ledger), :mod:`.episodes` (drift lifecycles
replayed), :mod:`.monitoring` (expected vs actual runs), :mod:`.controls` (the SOC 2
mapping), :mod:`.policies` (policy compliance from the policy tables),
:mod:`.fields` (what a change touched), :mod:`.charts` (inline SVG),
:mod:`.html` / :mod:`.export` (rendering), :mod:`.fleet` (one report over many ledgers) and
:mod:`.definitions` (the appendix). The ``report`` command is :mod:`auditor.cli.report`.
"""
