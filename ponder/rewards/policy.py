"""Sample ponder-tiny's own completions (on-policy PRM data), deterministically.

The lean KV-cached loop of `decode.Decoder` on ponder-tiny's weights, over
left-padded batches with one seeded `torch.Generator` per batch, so the same
arguments give the same samples on the same machine (vLLM would be faster to
start on a quiet machine, but its CPU batching is not bit-stable).
Each sample keeps its top-k raw log-probabilities per token, so the logprob
confidence scorer can be evaluated on the very same samples.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from tqdm import tqdm

from ponder.engine.base import TokenLogprob, TopLogprob
from ponder.models.tiny_tokenizer import END_ID
from ponder.rewards.decode import Decoder
from ponder.rewards.prm_data import Encoder, Prompt
from ponder.rewards.prm_model import backbone_from_causal_lm


@dataclass(frozen=True)
class PolicySample:
    prompt_index: int
    prompt: tuple[int, ...]
    completion: tuple[int, ...]  # cut at <|end|>
    text: str
    finished: bool  # ended with <|end|> (not the length cap)
    chosen: tuple[float, ...]  # per completion token: its own logprob
    topk: tuple[tuple[float, ...], ...]  # per completion token: top-k logprobs, best first

    def logprobs(self) -> list[TokenLogprob]:
        """The `Candidate.logprobs` shape the confidence scorer reads."""
        return [TokenLogprob(t, "", lp, tuple(TopLogprob(-1, "", v) for v in row))
                for t, lp, row in zip(self.completion, self.chosen, self.topk, strict=True)]


def load_policy(folder: str | Path) -> Decoder:
    return Decoder(backbone_from_causal_lm(folder))


@torch.inference_mode()
def sample(model: Decoder, prompts: Sequence[Prompt], k: int, *, temperature: float = 1.0,
           max_new_tokens: int = 320, batch: int = 256, seed: int = 0, top_logprobs: int = 5,
           desc: str = "sample") -> list[PolicySample]:
    """`k` samples per prompt, in prompt order (prompt i owns samples i*k .. i*k+k-1)."""
    enc = Encoder()
    jobs = [(i, enc.prompt(p.messages)) for i, p in enumerate(prompts) for _ in range(k)]
    out: list[PolicySample] = []
    for b0 in tqdm(range(0, len(jobs), batch), desc=desc, unit="batch"):
        chunk = jobs[b0 : b0 + batch]
        gen = torch.Generator().manual_seed(seed * 1_000_003 + b0)
        prompt_ids = [p for _, p in chunk]
        tokens, chosen, top = model.sample(prompt_ids, temperature, max_new_tokens, gen, top_logprobs, END_ID)
        for r, (pi, p) in enumerate(chunk):
            row = tokens[r].tolist()
            n = row.index(END_ID) if END_ID in row else len(row)
            comp = tuple(row[:n])
            out.append(PolicySample(pi, tuple(p), comp, enc.decode(comp), END_ID in row,
                                    tuple(chosen[r, :n].tolist()), tuple(tuple(v) for v in top[r, :n].tolist())))
    return out
