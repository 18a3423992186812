"""Ponder: an OpenAI-compatible server over vLLM with per-request test-time strategies."""

__version__ = "0.1.0"
