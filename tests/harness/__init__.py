"""Real parts for tests and benchmarks: registry processes, a token service, image corpora."""
