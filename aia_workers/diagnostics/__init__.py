"""Built-in diagnostic work: the smoke test and the benchmark workload."""
