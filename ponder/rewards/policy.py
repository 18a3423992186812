"""Sample ponder-tiny's own completions (on-policy PRM data) with transformers, deterministically.

Plain `LlamaForCausalLM.generate` with a KV cache on left-padded batches, one
`torch.manual_seed` per batch, so the same arguments give the same samples on
the same machine (vLLM would be faster but its CPU batching is not bit-stable).
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
from ponder.rewards.prm_data import Encoder, Prompt


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


def load_policy(folder: str | Path) -> torch.nn.Module:
    from transformers import LlamaForCausalLM

    model = LlamaForCausalLM.from_pretrained(str(folder), dtype=torch.float32)
    return model.eval()


@torch.inference_mode()
def sample(model: torch.nn.Module, prompts: Sequence[Prompt], k: int, *, temperature: float = 1.0,
           max_new_tokens: int = 320, batch: int = 64, seed: int = 0, top_logprobs: int = 5,
           desc: str = "sample") -> list[PolicySample]:
    """`k` samples per prompt, in prompt order (prompt i owns samples i*k .. i*k+k-1)."""
    enc = Encoder()
    jobs = [(i, enc.prompt(p.messages)) for i, p in enumerate(prompts) for _ in range(k)]
    out: list[PolicySample] = []
    for b0 in tqdm(range(0, len(jobs), batch), desc=desc, unit="batch"):
        chunk = jobs[b0 : b0 + batch]
        width = max(len(ids) for _, ids in chunk)
        ids = torch.full((len(chunk), width), END_ID, dtype=torch.long)
        mask = torch.zeros((len(chunk), width), dtype=torch.long)
        for r, (_, p) in enumerate(chunk):
            ids[r, width - len(p) :] = torch.tensor(p)
            mask[r, width - len(p) :] = 1
        torch.manual_seed(seed * 1_000_003 + b0)
        gen = model.generate(  # type: ignore[operator]
            input_ids=ids, attention_mask=mask, do_sample=temperature > 0, temperature=temperature or None,
            top_k=0, top_p=1.0, max_new_tokens=max_new_tokens, eos_token_id=END_ID, pad_token_id=END_ID,
            output_logits=True, return_dict_in_generate=True,
        )
        new = gen.sequences[:, width:]  # [b, L]
        logps = torch.stack(gen.logits, dim=1).float().log_softmax(-1)  # [b, L, V] raw (untempered)
        top = logps.topk(top_logprobs, dim=-1).values  # [b, L, k]
        chosen = logps.gather(-1, new[..., None]).squeeze(-1)  # [b, L]
        for r, (pi, p) in enumerate(chunk):
            row = new[r].tolist()
            n = row.index(END_ID) if END_ID in row else len(row)
            comp = tuple(row[:n])
            out.append(PolicySample(pi, tuple(p), comp, enc.decode(comp), END_ID in row,
                                    tuple(chosen[r, :n].tolist()), tuple(tuple(v) for v in top[r, :n].tolist())))
    return out
