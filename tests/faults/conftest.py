"""The fault suite: API, Git, Slack and ledger faults, crashes and tampering, each run through
the real paths (the CLI or the pipeline against the sandbox, real Git repositories, real
SQLite files), asserting that nothing is lost, nothing is duplicated, and that what could not
be decided is said in one readable line."""
