"""The read-only web UI over one ledger or a fleet of them (:mod:`.serve`), with its
templates, ``/metrics`` and ``/healthz``; the endpoint kube-apiserver's audit webhook
backend posts to (:mod:`.auditwebhook`)."""
