"""Optional auto-revert: put Git's state back, safely and on the record.

Off by default (``revert.mode: off``). In ``dry-run`` each revert is planned and checked by a
server dry-run, recorded and reported, and nothing changes; in ``enforce`` it is carried out.

Planning (:mod:`.plan`) is pure: comparison results, the desired objects and the live objects
of the drifted/orphan keys in, an ordered list of actions with reasons out. It keeps what
the configured scope selects (kinds, namespaces, a label selector), drops objects annotated
``drift-auditor.io/revert: "false"``, objects whose revert failed recently (backoff from the
ledger), missing objects unless ``recreate_missing``, orphans unless ``prune``, and drift
that only controllers made. More actions than ``max_objects`` → nothing is done at all, and
the run says so: a mass revert is more likely a wrong Git revision than a bad night.

Execution (:mod:`.execute`) reverts by server-side apply of the desired object with the
``drift-auditor`` field manager and ``force=true``, in dependency order (Namespaces, CRDs,
ServiceAccounts and RBAC, ConfigMaps and Secrets, storage, Services, workloads, the rest,
custom resources; deletions last, in reverse). Each object is read fresh first (an opt-out
added since the listing is honoured), then applied with ``dryRun=All``, then for real.

Why a forced apply is not enough: server-side apply removes only fields its manager applied
before. A field a human added out of band (``kubectl set env``, ``kubectl label``,
``kubectl edit``: ``Update`` managers) is owned by that human, so an apply that omits it
leaves it in place. Before the real apply the executor therefore moves the human managers'
field ownership into the tool's own ``Apply`` entry (a JSON patch of
``metadata.managedFields``, guarded by a resourceVersion ``test``); the apply then prunes
what the tool now owns and Git does not declare, and restores what Git declares. This is
client-go's own move when kubectl upgrades client-side-apply ownership to server-side apply
(``k8s.io/client-go/util/csaupgrade.UpgradeManagedFieldsPatch``: replace
``/metadata/managedFields`` behind a resourceVersion test) and Flux's for kubectl edits
(fluxcd/kustomize-controller#562). Fields of controllers
(the HPA's replicas, a webhook's sidecar) and of ``scale``/``status`` subresource writes are
never taken, and ``spec.replicas`` stays with its owner when Git does not declare it.

The run's revert stage (:mod:`.stage`) keeps the live objects it needs while the cluster
streams past the comparison, then plans, executes and records: every attempt is a chained
ledger row (:mod:`auditor.ledger.reverts`) and a successful one closes the object's drift as
``reverted``. Secret values go to the API server only: the
ledger, logs and problems get paths, key names and keyed hashes.
"""
