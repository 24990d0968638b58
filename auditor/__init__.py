"""Drift Auditor: keeps Kubernetes clusters honest against Git."""

__version__ = "0.1.0"
