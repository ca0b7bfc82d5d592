"""Tools for development, tests and benchmarks; no stage of the sync imports them."""
