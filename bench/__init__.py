"""``make bench``: reproducible benchmarks of the hub (issue 9). See BENCHMARKS.md."""
