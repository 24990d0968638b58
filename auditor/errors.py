"""The error hierarchy: every failure the tool reports to a user is an ``AuditorError``.

The CLI turns any ``AuditorError`` into one readable line and exit status 2. Messages name
the file, the document, the key and the offending value wherever those are known.
"""

from __future__ import annotations


class AuditorError(Exception):
    """Base of every error Drift Auditor reports to a user."""


class ConfigError(AuditorError):
    """The configuration file, environment or flags are invalid."""


class ManifestError(AuditorError):
    """A manifest in Git cannot be read, parsed or rendered."""

    def __init__(self, message: str, *, file: str | None = None, document: int | None = None,
                 line: int | None = None) -> None:
        super().__init__(message)
        self.file = file
        self.document = document
        self.line = line


class ToolMissingError(AuditorError):
    """An external binary (kustomize, helm, git) is not installed."""


class GitError(AuditorError):
    """A Git repository cannot be cloned, fetched or read."""


class ClusterError(AuditorError):
    """The Kubernetes API cannot be reached or answered with an unrecoverable error."""


class ClusterUnreachableError(ClusterError):
    """The Kubernetes API did not answer at all (connection refused, DNS, TLS, timeout)."""


class ForbiddenError(ClusterError):
    """The API answered 403 for a kind: the service account lacks a permission."""


class SnapshotError(AuditorError):
    """A live snapshot file cannot be read."""


class LedgerError(AuditorError):
    """The SQLite ledger cannot be opened, migrated or written."""


class LedgerLockedError(LedgerError):
    """Another run holds the ledger."""


class LedgerTamperedError(LedgerError):
    """The ledger's hash chain does not verify."""


class PolicyError(AuditorError):
    """A policy file does not parse or compile."""


class DeliveryError(AuditorError):
    """An alert or metric could not be delivered (it stays queued)."""
