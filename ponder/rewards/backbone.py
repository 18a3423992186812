"""A plain-torch Llama decoder that runs over PACKED ragged batches (no padding).

The process reward model's backbone. All candidates of a request are laid end
to end in one `[T]` token tensor with CSR `seq_offsets [B+1]` (sequence b owns
rows `seq_offsets[b]:seq_offsets[b+1]`). Embeddings, norms, projections and MLPs
run on the whole `[T, d]` pack; attention runs per sequence segment with a
causal mask (one SDPA call per segment), and rotary positions restart at 0 for
every sequence. Nothing is padded, so cost is exactly sum(L_b) tokens for the
dense parts and sum(L_b^2) for attention.

Parameter names match transformers' `LlamaModel` (`embed_tokens`,
`layers.{i}.self_attn.q_proj`, ..., `norm`), so a state dict loads into either,
and the tests check the packed forward against `LlamaModel` sequence by sequence.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn


@dataclass(frozen=True)
class BackboneConfig:
    vocab_size: int = 262
    hidden: int = 192
    layers: int = 4
    heads: int = 6
    intermediate: int = 512
    rope_theta: float = 10000.0
    rms_eps: float = 1e-6
    max_positions: int = 2048

    def __post_init__(self) -> None:
        if self.hidden % self.heads or (self.hidden // self.heads) % 2:
            raise ValueError("hidden must split into heads of even size")
        if min(self.vocab_size, self.hidden, self.layers, self.heads, self.intermediate) < 1:
            raise ValueError("sizes must be positive")

    @property
    def head_dim(self) -> int:
        return self.hidden // self.heads

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def hf_config(self) -> Any:
        """The equivalent transformers `LlamaConfig` (for tests and interop)."""
        from transformers import LlamaConfig

        return LlamaConfig(
            vocab_size=self.vocab_size, hidden_size=self.hidden, intermediate_size=self.intermediate,
            num_hidden_layers=self.layers, num_attention_heads=self.heads, num_key_value_heads=self.heads,
            max_position_embeddings=self.max_positions,
            rope_parameters={"rope_type": "default", "rope_theta": self.rope_theta},
            rms_norm_eps=self.rms_eps, attention_bias=False, mlp_bias=False, tie_word_embeddings=True,
        )


class RMSNorm(nn.Module):
    def __init__(self, d: int, eps: float) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(d))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x.float()
        h = h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.weight * h.to(x.dtype)


def positions_of(seq_offsets: torch.Tensor, total: int) -> torch.Tensor:
    """[T] position of every packed token inside its own sequence."""
    lengths = seq_offsets[1:] - seq_offsets[:-1]  # [B]
    starts = torch.repeat_interleave(seq_offsets[:-1], lengths, output_size=total)  # [T]
    return torch.arange(total, device=seq_offsets.device) - starts


def rotary(
    positions: torch.Tensor, head_dim: int, theta: float, dtype: torch.dtype
) -> tuple[torch.Tensor, torch.Tensor]:
    """cos, sin [T, 1, head_dim] in Llama's rotate-half layout."""
    inv_freq = 1.0 / theta ** (torch.arange(0, head_dim, 2, device=positions.device).float() / head_dim)
    freqs = positions.float()[:, None] * inv_freq[None, :]  # [T, hd/2]
    emb = torch.cat([freqs, freqs], dim=-1)[:, None, :]  # [T, 1, hd]
    return emb.cos().to(dtype), emb.sin().to(dtype)


def _rotate_half(x: torch.Tensor) -> torch.Tensor:
    half = x.shape[-1] // 2
    return torch.cat([-x[..., half:], x[..., :half]], dim=-1)


class Attention(nn.Module):
    def __init__(self, cfg: BackboneConfig) -> None:
        super().__init__()
        d, self.heads, self.head_dim = cfg.hidden, cfg.heads, cfg.head_dim
        self.q_proj = nn.Linear(d, d, bias=False)
        self.k_proj = nn.Linear(d, d, bias=False)
        self.v_proj = nn.Linear(d, d, bias=False)
        self.o_proj = nn.Linear(d, d, bias=False)

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, bounds: list[int]) -> torch.Tensor:
        total = x.shape[0]
        q = self.q_proj(x).view(total, self.heads, self.head_dim)  # [T, H, hd]
        k = self.k_proj(x).view(total, self.heads, self.head_dim)
        v = self.v_proj(x).view(total, self.heads, self.head_dim)
        q = q * cos + _rotate_half(q) * sin
        k = k * cos + _rotate_half(k) * sin
        out = []
        for lo, hi in zip(bounds[:-1], bounds[1:], strict=True):
            if hi == lo:
                continue
            qs, ks, vs = (t[lo:hi].transpose(0, 1) for t in (q, k, v))  # [H, L, hd] each
            att = F.scaled_dot_product_attention(qs, ks, vs, is_causal=True)  # [H, L, hd]
            out.append(att.transpose(0, 1).reshape(hi - lo, -1))  # [L, d]
        merged = torch.cat(out) if out else x.new_zeros(0, x.shape[1])
        return self.o_proj(merged)


class MLP(nn.Module):
    def __init__(self, cfg: BackboneConfig) -> None:
        super().__init__()
        self.gate_proj = nn.Linear(cfg.hidden, cfg.intermediate, bias=False)
        self.up_proj = nn.Linear(cfg.hidden, cfg.intermediate, bias=False)
        self.down_proj = nn.Linear(cfg.intermediate, cfg.hidden, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class DecoderLayer(nn.Module):
    def __init__(self, cfg: BackboneConfig) -> None:
        super().__init__()
        self.self_attn = Attention(cfg)
        self.mlp = MLP(cfg)
        self.input_layernorm = RMSNorm(cfg.hidden, cfg.rms_eps)
        self.post_attention_layernorm = RMSNorm(cfg.hidden, cfg.rms_eps)

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, bounds: list[int]) -> torch.Tensor:
        x = x + self.self_attn(self.input_layernorm(x), cos, sin, bounds)
        return x + self.mlp(self.post_attention_layernorm(x))


@dataclass(frozen=True)
class Segments:
    """Per-pack attention layout shared by all layers: rotary tables and sequence bounds."""

    cos: torch.Tensor  # [T, 1, hd]
    sin: torch.Tensor  # [T, 1, hd]
    bounds: list[int]  # seq_offsets as Python ints

    @classmethod
    def of(cls, seq_offsets: torch.Tensor, cfg: BackboneConfig, dtype: torch.dtype) -> Segments:
        total = int(seq_offsets[-1])
        cos, sin = rotary(positions_of(seq_offsets, total), cfg.head_dim, cfg.rope_theta, dtype)
        return cls(cos, sin, [int(b) for b in seq_offsets.tolist()])


def run_layers(layers: nn.ModuleList, x: torch.Tensor, seg: Segments) -> torch.Tensor:
    for layer in layers:
        x = layer(x, seg.cos, seg.sin, seg.bounds)
    return x


class PackedLlama(nn.Module):
    """`forward(ids [T], seq_offsets [B+1]) -> hidden [T, d]` (after the final norm)."""

    def __init__(self, cfg: BackboneConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.embed_tokens = nn.Embedding(cfg.vocab_size, cfg.hidden)
        self.layers = nn.ModuleList(DecoderLayer(cfg) for _ in range(cfg.layers))
        self.norm = RMSNorm(cfg.hidden, cfg.rms_eps)
        self.apply(init_weights)

    def forward(self, ids: torch.Tensor, seq_offsets: torch.Tensor) -> torch.Tensor:
        return self.norm(self.residual(ids, Segments.of(seq_offsets, self.cfg, self.embed_tokens.weight.dtype)))

    def residual(self, ids: torch.Tensor, seg: Segments) -> torch.Tensor:
        """[T, d] residual stream after the last layer, before the final norm."""
        return run_layers(self.layers, self.embed_tokens(ids), seg)

    def lm_logits(self, hidden: torch.Tensor) -> torch.Tensor:
        """[N, vocab] next-token logits with the tied embedding (from normed hidden states)."""
        return hidden @ self.embed_tokens.weight.T


def init_weights(module: nn.Module, std: float = 0.02) -> None:
    """Llama's initialisation (transformers' `initializer_range`): N(0, 0.02), zero biases."""
    if isinstance(module, (nn.Linear, nn.Embedding)):
        nn.init.normal_(module.weight, std=std)
    if isinstance(module, nn.Linear) and module.bias is not None:
        nn.init.zeros_(module.bias)


def pack(seqs: list[list[int]], device: torch.device | str = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
    """Concatenate token lists: ids [T] and seq_offsets [B+1] (int64)."""
    offsets = [0]
    for s in seqs:
        offsets.append(offsets[-1] + len(s))
    flat = [t for s in seqs for t in s]
    return (torch.tensor(flat, dtype=torch.long, device=device),
            torch.tensor(offsets, dtype=torch.long, device=device))
