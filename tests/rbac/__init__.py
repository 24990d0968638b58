"""The RBAC proofs: the shipped and documented roles, sufficient and minimal, against an RBAC-enforcing API server."""
