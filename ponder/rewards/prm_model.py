"""The process reward model: a packed Llama backbone plus a d -> 1 reward head.

A step of a ponder-tiny completion is a non-empty line; its step-end token is
the token that closes the line (the newline, or a `<think>`/`</think>` tag that
follows it directly) or, for the last line, its last non-blank token. The head
reads the hidden state there: P(step good) = sigmoid(w . h + b). The same head
read at the completion's last token is the outcome reward (ORM).

Folder layout (`save`/`load`): `config.json` (backbone sizes and what the model
was trained for), `model.safetensors` (backbone with transformers' LlamaModel
names, plus `head.weight [1, d]` and `head.bias [1]`), `README.md` (model card).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from ponder.kernels.step_scores import StepScores, step_scores
from ponder.models.tiny_tokenizer import END_ID, THINK_END_ID, THINK_ID
from ponder.rewards.backbone import BackboneConfig, PackedLlama, init_weights, pack

NEWLINE = 10
SEPARATORS = frozenset((NEWLINE, THINK_ID, THINK_END_ID))
BLANK = frozenset((9, 11, 12, 13, 32))  # bytes str.strip() drops, besides the newline


def completion_ids(token_ids: Sequence[int]) -> list[int]:
    """The completion up to (not including) its first `<|end|>`; the rest is ignored."""
    ids = list(token_ids)
    return ids[: ids.index(END_ID)] if END_ID in ids else ids


def step_ends(ids: Sequence[int]) -> list[int]:
    """Positions (in `ids`) of the step-end tokens, one per non-empty line, in order.

    Same segmentation as `tiny_labels.label_steps` (lines split at newlines and
    think tags), so its i-th label belongs to the i-th position returned here.
    """
    ends: list[int] = []
    last_content = -1  # last non-blank token of the current line, -1 if none yet
    for i, t in enumerate(ids):
        if t == END_ID:
            break
        if t in SEPARATORS:
            if last_content >= 0:
                ends.append(i)
            last_content = -1
        elif t not in BLANK:
            last_content = i
    if last_content >= 0:
        ends.append(last_content)
    return ends


@dataclass(frozen=True)
class Packed:
    """Candidates laid end to end: ids [T], seq_offsets [B+1], step_pos [S], step_offsets [B+1]."""

    ids: torch.Tensor
    seq_offsets: torch.Tensor
    step_pos: torch.Tensor
    step_offsets: torch.Tensor


def pack_candidates(pairs: Sequence[tuple[Sequence[int], Sequence[int]]], orm: bool = False,
                    device: torch.device | str = "cpu") -> Packed:
    """Pack (prompt ids, completion ids) pairs; step positions are relative to each sequence.

    `orm`: one position per sequence, its last token (after cutting at `<|end|>`).
    """
    seqs: list[list[int]] = []
    positions: list[int] = []
    step_offsets = [0]
    for prompt, completion in pairs:
        comp = completion_ids(completion)
        seq = list(prompt) + comp
        if orm:
            positions += [len(seq) - 1] if comp else []
        else:
            positions += [len(prompt) + p for p in step_ends(comp)]
        seqs.append(seq)
        step_offsets.append(len(positions))
    ids, offsets = pack(seqs, device)
    return Packed(ids, offsets, torch.tensor(positions, dtype=torch.long, device=device),
                  torch.tensor(step_offsets, dtype=torch.long, device=device))


class ProcessRewardModel(nn.Module):
    def __init__(self, cfg: BackboneConfig, meta: dict[str, Any] | None = None) -> None:
        super().__init__()
        self.cfg = cfg
        self.meta = dict(meta or {})
        self.backbone = PackedLlama(cfg)
        self.head = nn.Linear(cfg.hidden, 1)
        init_weights(self.head)

    def step_logits(self, hidden: torch.Tensor, packed: Packed) -> torch.Tensor:
        """[S] head logits at the step ends (training; inference goes through the kernel)."""
        counts = packed.step_offsets[1:] - packed.step_offsets[:-1]
        starts = torch.repeat_interleave(packed.seq_offsets[:-1], counts, output_size=packed.step_pos.numel())
        return self.head(hidden[starts + packed.step_pos]).squeeze(-1)

    @torch.inference_mode()
    def score(self, packed: Packed, reduce: str = "min", backend: str | None = None) -> StepScores:
        """Step probabilities [S] and per-sequence reduced scores [B] (NaN: no steps)."""
        hidden = self.backbone(packed.ids, packed.seq_offsets)  # [T, d]
        return step_scores(hidden, packed.seq_offsets, packed.step_pos, packed.step_offsets,
                           self.head.weight, self.head.bias, reduce, backend=backend)

    @property
    def device(self) -> torch.device:
        return self.head.weight.device

    def save(self, folder: str | Path, dtype: torch.dtype = torch.float32) -> None:
        out = Path(folder)
        out.mkdir(parents=True, exist_ok=True)
        tensors = {f"{k}": v.detach().to("cpu", dtype).contiguous() for k, v in self.state_dict().items()}
        tensors = {k.removeprefix("backbone."): v for k, v in tensors.items()}
        save_file(tensors, str(out / "model.safetensors"), metadata={"format": "pt"})
        config = {"architecture": "PackedLlama+head", "backbone": self.cfg.to_dict(), "head_classes": 1, **self.meta}
        (out / "config.json").write_text(json.dumps(config, indent=2) + "\n")

    @classmethod
    def load(cls, folder: str | Path, device: torch.device | str = "cpu") -> ProcessRewardModel:
        folder = Path(folder)
        config = json.loads((folder / "config.json").read_text())
        cfg = BackboneConfig(**config.pop("backbone"))
        model = cls(cfg, {k: v for k, v in config.items() if k not in ("architecture", "head_classes")})
        tensors = load_file(str(folder / "model.safetensors"))
        state = {(k if k.startswith("head.") else f"backbone.{k}"): v.float() for k, v in tensors.items()}
        model.load_state_dict(state)
        return model.to(device).eval()
