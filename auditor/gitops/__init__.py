"""Sources declared by the GitOps controllers in the cluster (``sources: [{from: argocd}]``,
``{from: flux}``): their objects read each run and turned into the Git sources the audit
renders, with what each controller last applied.

- :mod:`.records`: what crosses out of this package (a derived source, a skipped object,
  the controllers' view of one run).
- :mod:`.argocd`, :mod:`.flux`: pure functions from the controllers' objects to sources.
- :mod:`.discover`: the I/O: the objects listed from the cluster (or a snapshot), the
  credentials chosen, the derivation run.
- :mod:`.lag`: how far Git is ahead of what each controller applied.
"""

from __future__ import annotations

from .discover import CONTROLLER_KINDS, controller_objects, derive_all
from .lag import sync_lags
from .records import Derivation, Derived, Skipped, SyncLag

__all__ = ["CONTROLLER_KINDS", "Derivation", "Derived", "Skipped", "SyncLag",
           "controller_objects", "derive_all", "sync_lags"]
