"""asv suites: thin wrappers over the case registry (``recsys_fast.harness``)."""
