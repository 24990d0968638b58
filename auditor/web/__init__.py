"""The read-only web UI over one ledger or a fleet of them (:mod:`.serve`), with its
templates, ``/metrics`` and ``/healthz``."""
