"""Benchmarks for OpenQueue (issue 5). Not run by the test suite, except a smoke test."""
