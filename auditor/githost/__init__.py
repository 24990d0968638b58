"""Approvals from the git host: who reviewed, approved and merged each change, read from
GitHub's or GitLab's REST API instead of trusting ``Reviewed-by:`` trailers anyone can type.

For every first-parent commit of the history a run audits (:mod:`.mainline`) the host is
asked for the pull request (merge request) that brought it in, its reviews, its commits,
who merged it and its required checks (:mod:`.github`, :mod:`.gitlab`, over :mod:`.http`),
and the branch protection is snapshotted. Segregation of duties decides the verdict
(:mod:`.sod`): an approval counts only from someone who is neither the author nor the last
pusher, on the head commit. Answers are cached per commit beside the ledger (:mod:`.cache`),
so a run offline or rate limited still judges what it judged before; what it cannot judge
is ``unknown`` that run, never unapproved. Without a host configured, trailers remain the
evidence, labelled as typed in the commit message and not verified.

The pipeline hands the result to :mod:`auditor.ledger.approvals`; the report reads it back.
This package imports neither: it sits beside ``desired``, ``ledger`` and ``live``.
"""

from __future__ import annotations

from .collect import Outcome, change_from_record, changes_of, collect
from .hosts import HostSettings, resolve
from .model import TRAILER_LABEL, Approval, Change, Evidence, Protection, Review, host_label

__all__ = ["TRAILER_LABEL", "Approval", "Change", "Evidence", "HostSettings", "Outcome",
           "Protection", "Review", "change_from_record", "changes_of", "collect", "host_label",
           "resolve"]
