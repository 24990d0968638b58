"""The appendix: how every number in the report is computed, so an auditor can re-perform it
from the ledger (or from the exported CSVs) without reading our code."""

from __future__ import annotations

from .controls import CRITERIA, MAPPINGS, MONITORED


def _mapping_term(cid: str, criteria: tuple[str, ...]) -> str:
    if cid == "DA-10":
        return "Mapping DA-10 → the policies' criteria"
    return f"Mapping {cid} → {', '.join(criteria)}" if criteria else f"Mapping {cid} → none"


def mappings() -> list[tuple[str, str]]:
    """One glossary entry per control: the criteria it is presented as evidence of, each
    criterion's text, and why."""
    out = []
    for cid, (criteria, why) in MAPPINGS.items():
        said = " ".join(f"{cc}: {CRITERIA[cc]}" for cc in criteria if cid != "DA-10")
        out.append((_mapping_term(cid, criteria), f"{why} {said}".strip()))
    return out


def definitions(schedule_minutes: int, sla_hours: float, *, match_window_s: int = 120,
                gap_threshold_s: int = 900) -> list[tuple[str, str]]:
    return [
        ("Period",
         "A half-open UTC interval [from, to). A run belongs to the period its start time "
         "falls in; a change belongs to the period of the run that detected it; a drift "
         "occurrence is in scope when it was unresolved at any moment of the period."),
        ("Run",
         f"One audit cycle, scheduled every {schedule_minutes} minutes: the cluster is listed, "
         "compared with Git and the result recorded in the ledger. Status complete, partial "
         "(some kinds could not be listed), failed or running (never finished)."),
        ("Monitoring completeness",
         f"The period (up to its end, or up to the report's generation for a period still "
         f"running) is cut into slots of {schedule_minutes} minutes from its start — or from "
         "the cluster's first run in the ledger when the period starts before it (a period "
         "given as a day whose first run came later that day: the report says coverage is "
         "measured from the first run); only whole slots are expected. A slot is covered when a complete or partial run of the cluster "
         "started in it. Expected = slots × clusters; covered slots / expected = coverage. A "
         "gap is a maximal series of uncovered slots, named with the reason (no run, or only "
         "failed runs)."),
        ("In-sync ratio",
         "Σ in-sync objects ÷ Σ (in-sync + drifted + missing + orphan) objects over every "
         "complete or partial run of the period, × 100. Ignored objects are excluded. The "
         "per-run counts are in the monitoring table (runs CSV), so the ratio is re-performed "
         "by summing its columns. In the JSON export it is summary.in_sync_ratio (and, under "
         "its earlier name, summary.compliance_score, kept for existing readers). It is not "
         "the compliance score: that name belongs to the policy score (see Policy "
         "compliance)."),
        ("Change",
         "A new version of a live object recorded by a run: created, updated or deleted. The "
         "first sighting of an object in the ledger's very first run is the baseline, not a "
         "change. Change time is the managedFields time of the write; a deletion or removal "
         "leaves no such time and its change time is shown as unknown."),
        ("Fields",
         "The paths of the drift the change opened (when it opened one); otherwise the paths "
         "whose values differ between the object's previous and new version (values are never "
         "shown; Secret keys by name only). Empty when the previous content was pruned by "
         "retention or for a creation/deletion."),
        ("Actor",
         "The field manager of the newest managedFields entry (kubectl-set, argocd-controller, "
         "…); the user comes from the API server audit log when one was given (identity source "
         "audit-log), else none. Category: human, controller, gitops (configured GitOps "
         "managers) or unknown."),
        ("Authorized / unauthorized",
         "Authorized: the change came from a configured GitOps manager, or the object was in "
         "sync with Git in the comparison that followed it (the change carried Git's content). "
         "Unauthorized: the object drifted from Git after the change and the drifted fields are "
         "owned by the change's manager, or the manager is a human-type or unidentified client. "
         "Unverified: neither can be established (e.g. a deletion without an audit log, an "
         "object outside Git)."),
        ("Git commit, pull request, approvers",
         "For a change that opened a drift: the commit of the object's file in Git at "
         "detection. For an authorized change: the first-parent (merge) commit that brought "
         "the object's file in, when a run judged its approval; otherwise the Git head the "
         "detecting run compared against (one per source). PR and approvers come from the "
         "git host when one is configured for the source (approvals section), else from the "
         "commit message: PR numbers from the subject, approvers from Reviewed-by, "
         "Approved-by and Acked-by trailers, labelled as typed in the commit message and not "
         "verified. PR and approvers are shown for authorized changes only: for any other "
         "change the commit is the desired state it departed from, not an approval of it."),
        ("Approval (segregation of duties)",
         "Each first-parent commit of the history a run audits (git rev-list --first-parent "
         "from the previous run's commit): a merge is one change with its branch's commits. "
         "From the git host: the pull request (merge request) that brought it in, every "
         "review (reviewer, state, time, commit reviewed), its author, its last pusher (the "
         "author of its head commit), who merged it and its checks. Authorized: the "
         "reviewer's standing review is an approval of the head commit (or a later one) by "
         "someone who is neither the author nor the last pusher, and no required check "
         "failed. Otherwise an exception: no pull request, approved by its own author, no "
         "independent approval, or required checks that did not pass. Unknown: the host "
         "could not be asked that run (rate limit, network); never counted as unapproved, "
         "and asked again by later runs. Answers are cached per commit beside the ledger and "
         "marked cached when reused. Branch protection is snapshotted every run."),
        ("Time to detect",
         "detected_at − change time, where detected_at is the start of the run that recorded "
         "the change (or opened the drift). Unknown when the change time is unknown. Bounded by "
         "the schedule: at most one slot plus the run's duration when monitoring is complete."),
        ("Time to remediate",
         "For a drift occurrence: resolved_at − detected_at, where resolved_at is the start of "
         "the first run that no longer saw it (or the tool's revert). For a change: resolved_at "
         "of the drift it opened − the change time (detection time when the change time is "
         "unknown)."),
        ("MTTR",
         "Mean time to remediate over the drift occurrences resolved in the period, excluding "
         "those superseded by a different drift on the same object (the successor carries on). "
         "The median is given beside it."),
        ("MTTD", "Mean time to detect over drift occurrences detected in the period whose change "
                 "time is known."),
        ("SLA and exposure",
         f"Exposure is the time a drift occurrence was unresolved and not accepted, up to the "
         f"period's end. An SLA breach is an exposure above {sla_hours:g} hours. An accepted "
         "drift stops its exposure until the acceptance expires."),
        ("Accepted exception",
         "A drift acknowledged with `drift-auditor ack`: who, why and until when (no expiry: "
         "until the drift changes or resolves). Recorded in the hash-chained ledger with the "
         "identity of who ran it: the user the API server authenticated (SelfSubjectReview), "
         "else the kubeconfig's user name (not verified), else the OS user; and the change "
         "ticket, when one was given (required when ledger.ack-ticket-pattern is set). An "
         "acceptance by the drift's own actor (field manager or authenticated user) is "
         "refused unless explicitly allowed; one allowed is marked self-acknowledged and is "
         "an exception of DA-7."),
        ("Management response",
         "Management's response to an exception (a drift or a change), recorded with "
         "`drift-auditor respond` in the hash-chained ledger: who (as typed and as "
         "authenticated), when, and the text. Shown next to the exception; responses "
         "recorded up to when the report was made are included."),
        ("Revert attempt",
         "One try of the tool's auto-revert (revert.mode enforce or dry-run) to put an "
         "object back to Git: a server-side apply of Git's object with the drift-auditor field "
         "manager (or a deletion of an orphan, with prune), first as a server dry-run. Recorded "
         "in the hash-chained ledger when it ends, with the start time of the run that made it. "
         "Result reverted (enforce, applied), dry-run (the API server accepted the dry run; "
         "nothing changed) or failed (the error is recorded, e.g. RBAC forbidden; later runs "
         "back off). What changed lists each drifted path with the previous live value and "
         "Git's value, as the ledger holds them; for Secrets only the paths. Managers taken "
         "over are the human field managers whose ownership moved to drift-auditor so the "
         "apply could remove their fields. A successful enforce revert resolves the drift as "
         "reverted in the same run; the drift table links it to its attempt, and each attempt "
         "links the drift occurrence of its object unresolved when the run started."),
        ("Revert cap",
         "revert.max_objects: a run that plans more reverts than this reverts nothing and "
         "records one revert_capped ledger event naming the objects (a mass revert is more "
         "likely a wrong Git revision). Each such run is an exception of DA-11."),
        ("Emergency change",
         "A live change (typically made by hand during an incident) that drifted from Git and "
         "was then written into Git with drift-auditor adopt: a commit on a new branch, "
         "recorded in the ledger (branch, commit, who ran adopt, when). Changed live by is the "
         "field manager of the adopted live values, and the user when an API-server audit log "
         "named one. An emergency change is in the period when it was adopted in it or when "
         "its drift was resolved in it."),
        ("Retroactive approval",
         "The merge of the adoption branch after review. Merged: a run audited the adoption "
         "commit, or a commit carrying its Drift-Auditor-Drift trailer (a squash merge); the "
         "head shown is the Git head that run compared against (a merge commit lands there), "
         "with PR and approvers from those commits. Outcome approved: the drift was resolved "
         "as git-changed (resolved: Git changed to match) and the commit was merged; pending: "
         "not yet at the period's end; resolved-otherwise: the drift closed another way. "
         f"Approved at is the start of the run that first saw Git match live (the merge "
         f"happened before it, within one schedule slot when monitoring is complete). Time to "
         f"approval: approved at − the live change time (detection time when unknown). DA-12 "
         f"counts as exceptions the adoptions still pending {sla_hours:g} hours after adoption "
         f"(at the period's end, or now for a running period): those keep an unapproved "
         f"change live. One resolved otherwise is no longer live and is not an exception."),
        ("Watch batch",
         "Between scheduled runs, drift-auditor watch records each change as the API server "
         "reports it, in batches; each batch is a run of mode watch in the ledger that judges "
         "only the objects of its batch (their drift opened or resolved). Watch batches are "
         "not audits of the whole cluster: monitoring completeness, the in-sync ratio and "
         "the run log count scheduled runs only; their changes are in the change population "
         "(detected by watch) and their drift events in the drift section."),
        ("Transient change",
         "A version no scheduled run saw as current: recorded by the watch and replaced by the "
         "object's next version before any scheduled run (complete or partial, not skipping "
         "the kind) started — changed and changed back, or changed again, between two runs. "
         "An API-server audit write is transient when another write on the same object "
         "completed after it and before the next such scheduled run. A version still current "
         "is not transient."),
        ("Change completeness",
         "Every create, update, patch or delete the API server's audit log records, "
         "successful (2xx), not a dry run, on a named object (subresource none or scale) of a "
         "kind and namespace the ledger audits, in the period, is matched with a change the "
         "ledger recorded for the same object: a deletion for a delete, a creation or update "
         "otherwise, whose own time (managedFields, or the watch's) lies between the "
         "request's receipt less 1 second and its completion plus "
         f"{match_window_s} seconds; a change the ledger could only date by its run (a "
         "deletion found missing from a list) matches a write completed between the start of "
         "the previous scheduled run and the end of the run that recorded it. Each change "
         "matches one write at most, writes taking the earliest fitting change in time order. "
         "Exceptions (DA-13): every unmatched write, every gap of the audit stream, every "
         "scheduled run that skipped kinds. Coverage per kind = matched ÷ in-scope writes. "
         "The same auditID delivered by two sources (log file and webhook) counts once."),
        ("Audit stream gap",
         f"A stretch longer than {gap_threshold_s // 60} minutes, within the period and up to "
         "the report's generation, in which no audit source delivered any event (of any verb: "
         "reads count as the stream's pulse). A stretch before the audit stream's first event "
         "is a gap too. Heartbeats (a source alive with nothing new) say whether a source "
         "was alive but silent or not delivering at all."),
        ("Control result",
         "No exceptions found by the tool: population not empty and the tool found no "
         "exception in what the ledger recorded — a statement about the evidence, not an "
         "opinion on the control. Exceptions: each exception is a row of the report (change, "
         "drift occurrence, gap, commit) linked from the matrix. Not tested: empty "
         "population of something the period should have produced (no change, no drift, no "
         "run). Not applicable in period: the control's subject did not occur at all "
         "(no policy evaluated, no revert attempted, nothing adopted into Git, no API-server "
         "audit source): the row stays in the matrix, with why, and nothing is concluded."),
        ("Drift exceptions per occurrence",
         "DA-1, DA-14, DA-2, DA-3 and DA-7 count as an exception each drift occurrence of the "
         "period (opened or reopened in it, or still unresolved from before) that was open and "
         "not accepted beyond the SLA at any time, even if resolved later, or that is "
         "unresolved and not accepted at the period's end. An object that drifted twice is two "
         "exceptions. DA-8 counts each occurrence beyond the SLA."),
        ("Monitoring gap as an exception",
         "Each monitoring gap (a series of scheduled runs missed or failed) is one exception "
         "interval of every control whose population the scheduled runs produce: "
         f"{', '.join(sorted(MONITORED, key=lambda c: int(c[3:])))}. Nothing was compared "
         "with Git during it, so the tool cannot say that no exception happened then. DA-4 "
         "counts the missed runs themselves."),
        ("Image pinning",
         "For the images of authorized workload changes (from the stored content of the new "
         "version): pinned by digest (image@sha256:…) names exactly the image reviewed; "
         "pinned by tag (image:1.2) or without a tag names a reference the registry can "
         "point at other bytes after the review. Counted per distinct image reference."),
        ("Policy compliance",
         "Each run evaluates the configured policies on every live object in scope and records "
         "in the ledger the results that changed plus a per-run summary. Policy score (the "
         "compliance score of drift-auditor run's summary, computed by the run): Σ severity weight of passing results ÷ Σ severity weight of all results "
         "except skipped ones, × 100, with weights critical 10, high 5, medium 2, low 1 (no "
         "result: 100). Counts per policy are those of the last evaluating run of the period; "
         "failures at the period's end are replayed from the recorded result changes, and "
         "exempted results are not failures. Newly failing / fixed count result changes in the "
         "period."),
        ("Ledger integrity",
         "`drift-auditor verify` recomputes every event hash of the chain, compares each "
         "chained row with its event, hashes every stored object content again against its "
         "chained content hash (content may be missing only where a prune recorded in the "
         "chain removed it), and checks every checkpoint against the chain. The "
         "checkpoint shown is the newest one written before the period's end; its head hash "
         "fixes the ledger content the report was computed from. DA-6 reports it as support "
         "for the reliability of the evidence, not as evidence of a criterion."),
        *mappings(),
    ]
