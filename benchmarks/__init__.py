"""Benchmarks: load tester, Ponder-vs-vLLM comparison, kernel benchmark (scripts, not tests)."""
