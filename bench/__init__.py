"""The project's benchmark suites (`make bench`). Numbers are ratios measured in one run."""
