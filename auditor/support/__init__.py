"""Runtime helpers every layer may use, with no knowledge of Kubernetes or Git: objects
kept as packed bytes, garbage-collector settings for bulk work, cache files written whole,
progress reporting and the Secret hash key file."""
