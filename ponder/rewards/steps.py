"""Step positions of ponder-tiny completions, and packing candidates for the reward model.

A step of a ponder-tiny completion is a non-empty line; its step-end token is
the token that closes the line (the newline, or a `<think>`/`</think>` tag that
follows it directly) or, for the last line, its last non-blank token. This is
the segmentation of `tiny_labels.label_steps`, in token space.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from ponder.models.tiny_tokenizer import END_ID, THINK_END_ID, THINK_ID
from ponder.rewards.backbone import pack

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
