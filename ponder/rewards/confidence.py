"""Logprob confidence (DeepConf): a scorer that needs no extra model.

From each candidate's per-token top-k log-probabilities (returned by the
engine with the samples), token confidence is −mean(top-k logprobs); group
confidence is its mean over a sliding window; a trace scores by its lowest
group confidence (default), the mean of its bottom 10% groups, its tail
confidence or its mean. Computation: `ponder.kernels.window_confidence`.

Window and tail default to 16 and 64 tokens: DeepConf's 2048 suits traces of
tens of thousands of tokens; ponder-tiny's are about a hundred.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from ponder.kernels.window_confidence import bottom_percent, window_confidence
from ponder.rewards.base import CONFIDENCE_MEASURES, SCORERS, Candidate, CandidateScore


@dataclass(frozen=True)
class ConfidenceConfig:
    top_k: int = 5
    window: int = 16
    tail: int = 64
    default: str = "lowest"

    def __post_init__(self) -> None:
        if self.top_k < 1 or self.window < 1 or self.tail < 1:
            raise ValueError("top_k, window and tail must be >= 1")
        if self.default not in CONFIDENCE_MEASURES:
            raise ValueError(f"default must be one of {CONFIDENCE_MEASURES}")


def pack_topk(candidates: Sequence[Candidate], k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """[T, k] top-k logprobs of all candidates' tokens and their [B+1] offsets.

    The engine returns the top-k plus the sampled token when it ranks lower;
    the k best are kept. Missing entries (fewer than k) repeat the last one.
    """
    rows: list[list[float]] = []
    offsets = [0]
    for cand in candidates:
        for lp in cand.logprobs or ():
            top = sorted((t.logprob for t in lp.top), reverse=True)[:k] or [lp.logprob]
            top = [max(v, -1e4) for v in top]
            rows.append(top + [top[-1]] * (k - len(top)))
        offsets.append(len(rows))
    data = torch.tensor(rows, dtype=torch.float32) if rows else torch.zeros((0, k))
    return data, torch.tensor(offsets, dtype=torch.int64)


class ConfidenceScorer:
    name = "confidence"
    aggregates = CONFIDENCE_MEASURES

    def __init__(self, config: ConfidenceConfig | None = None) -> None:
        self.config = config or ConfidenceConfig()
        self.logprobs = self.config.top_k

    async def score(self, candidates: Sequence[Candidate], aggregate: str | None = None) -> list[CandidateScore]:
        measure = aggregate or self.config.default
        if measure not in CONFIDENCE_MEASURES:
            raise ValueError(f"confidence measure must be one of {CONFIDENCE_MEASURES}")
        if not candidates:
            return []
        data, offsets = pack_topk(candidates, self.config.top_k)
        out = window_confidence(data, offsets, self.config.window, self.config.tail)
        if measure == "bottom10":
            values = bottom_percent(out.window_conf, offsets, 10.0, window=self.config.window)
        else:
            values = {"lowest": out.lowest, "tail": out.tail_conf, "mean": out.mean}[measure]
        return [CandidateScore(v if math.isfinite(v) else float("-inf")) for v in values.tolist()]


@SCORERS.register("confidence")
def _confidence(folder: str) -> ConfidenceScorer:
    return ConfidenceScorer()
