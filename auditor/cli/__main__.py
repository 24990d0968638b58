"""``python -m auditor.cli``: the ``drift-auditor`` command."""

from auditor.cli import main

main()
