"""Compliance policies: ValidatingAdmissionPolicy-shaped CEL rules evaluated over Git
manifests and live objects, with exemptions, results in the ledger and CI-friendly outputs.

    engine = PolicyEngine.load("policies", cfg.policies)
    evaluation = evaluate_objects(engine, objects)         # or engine.session() + add/finish
    for result in evaluation.results: ...                  # PolicyResult per policy and object

Only :mod:`.engine` imports the CEL library.
"""

from __future__ import annotations

from .engine import CacheEntry, Evaluation, PolicyEngine, PolicySession, evaluate_objects
from .loader import load_policies
from .model import (
    SEVERITIES,
    STATUSES,
    Exemption,
    LoadProblem,
    Policy,
    PolicyResult,
)

__all__ = ["SEVERITIES", "STATUSES", "CacheEntry", "Evaluation", "Exemption", "LoadProblem",
           "Policy", "PolicyEngine", "PolicyResult", "PolicySession", "evaluate_objects",
           "load_policies"]
