"""A lean KV-cached sampler over a `PackedLlama` (the on-policy data generator's engine).

transformers' `generate` spends most of a decode step in Python bookkeeping on a
model this small; this loop does only the math: per layer one fused QKV matmul,
rotary, a write into a preallocated cache `[B, H, W + max_new, hd]` and one SDPA
call with a key-validity mask. Prompts are left-padded to width W; a padded row's
positions start at 0 on its first real token, so the result matches running each
prompt alone (the tests compare it with the packed forward).
"""

from __future__ import annotations

from typing import cast

import torch
import torch.nn.functional as F

from ponder.rewards.backbone import DecoderLayer, PackedLlama, _rotate_half, rotary


class Decoder:
    def __init__(self, model: PackedLlama) -> None:
        self.m, self.cfg = model, model.cfg
        self.layers = cast(list[DecoderLayer], list(model.layers))
        self.qkv = [torch.cat([lay.self_attn.q_proj.weight, lay.self_attn.k_proj.weight,
                               lay.self_attn.v_proj.weight]).detach() for lay in self.layers]  # [3d, d]
        self.gate_up = [torch.cat([lay.mlp.gate_proj.weight, lay.mlp.up_proj.weight]).detach()
                        for lay in self.layers]  # [2I, d]

    def _forward(self, x: torch.Tensor, pos: torch.Tensor, s0: int, valid: torch.Tensor,
                 cache: list[tuple[torch.Tensor, torch.Tensor]]) -> torch.Tensor:
        """x [B, L, d] at cache slots s0 : s0+L with positions pos [B, L] -> hidden [B, L, d]."""
        b, length, d = x.shape
        heads, hd = self.cfg.heads, self.cfg.head_dim
        cos, sin = rotary(pos.reshape(-1), hd, self.cfg.rope_theta, x.dtype)  # [B*L, 1, hd]
        cos, sin = cos.view(b, length, 1, hd).transpose(1, 2), sin.view(b, length, 1, hd).transpose(1, 2)
        end = s0 + length
        slots = torch.arange(end)
        causal = slots[None, :] <= (s0 + torch.arange(length))[:, None]  # [L, end]
        mask = (valid[:, None, None, :end] & causal) | (slots == (s0 + torch.arange(length))[:, None])
        for i, lay in enumerate(self.layers):
            h = lay.input_layernorm(x)
            q, k, v = (h @ self.qkv[i].T).view(b, length, 3, heads, hd).permute(2, 0, 3, 1, 4)  # [B, H, L, hd]
            q = q * cos + _rotate_half(q) * sin
            k = k * cos + _rotate_half(k) * sin
            kc, vc = cache[i]
            kc[:, :, s0:end], vc[:, :, s0:end] = k, v
            att = F.scaled_dot_product_attention(q, kc[:, :, :end], vc[:, :, :end], attn_mask=mask)
            x = x + lay.self_attn.o_proj(att.transpose(1, 2).reshape(b, length, d))
            gate, up = (lay.post_attention_layernorm(x) @ self.gate_up[i].T).chunk(2, dim=-1)
            x = x + lay.mlp.down_proj(F.silu(gate) * up)
        return self.m.norm(x)

    @torch.inference_mode()
    def sample(self, prompts: list[list[int]], temperature: float, max_new: int, gen: torch.Generator,
               k: int, end_id: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """New tokens [B, L], their raw logprobs [B, L] and top-k raw logprobs [B, L, k].

        Rows that produced `end_id` keep emitting it; stops once every row has.
        """
        b, width = len(prompts), max(map(len, prompts))
        lens = torch.tensor([len(p) for p in prompts])
        ids = torch.full((b, width), end_id, dtype=torch.long)
        for r, p in enumerate(prompts):
            ids[r, width - len(p) :] = torch.tensor(p)
        valid = torch.zeros((b, width + max_new), dtype=torch.bool)
        valid[:, :width] = torch.arange(width)[None, :] >= (width - lens)[:, None]
        pos = (torch.arange(width)[None, :] - (width - lens)[:, None]).clamp(min=0)  # [B, W]
        shape = (b, self.cfg.heads, width + max_new, self.cfg.head_dim)
        cache = [(torch.zeros(shape), torch.zeros(shape)) for _ in self.layers]
        hidden = self._forward(self.m.embed_tokens(ids), pos, 0, valid, cache)[:, -1]  # [B, d]
        done = torch.zeros(b, dtype=torch.bool)
        toks, chosen, tops = [], [], []
        for t in range(max_new):
            logp = self.m.lm_logits(hidden).float().log_softmax(-1)  # [B, V]
            if temperature > 0:
                nxt = torch.multinomial((logp / temperature).softmax(-1), 1, generator=gen).squeeze(1)
            else:
                nxt = logp.argmax(-1)
            nxt = torch.where(done, end_id, nxt)
            toks.append(nxt)
            chosen.append(logp.gather(-1, nxt[:, None]).squeeze(1))
            tops.append(logp.topk(k, dim=-1).values)
            done |= nxt == end_id
            if bool(done.all()) or t + 1 == max_new:
                break
            valid[:, width + t] = True
            x = self.m.embed_tokens(nxt[:, None])  # [B, 1, d]
            hidden = self._forward(x, (lens + t)[:, None], width + t, valid, cache)[:, -1]
        return torch.stack(toks, 1), torch.stack(chosen, 1), torch.stack(tops, 1)
