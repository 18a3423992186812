"""Shared fixtures: the ponder-tiny tokenizer folder for unit tests, and (in
`server.py`) one real Ponder server on the real vLLM engine per test session."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest_plugins = ["tests.server"]


@pytest.fixture(scope="session")
def tiny_tokenizer_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from ponder.models.tiny_tokenizer import write_tokenizer

    folder = tmp_path_factory.mktemp("tiny-tokenizer")
    write_tokenizer(folder)
    return folder
