"""The process reward model: ponder-tiny's frozen decoder, a surprise-reading verifier, a d -> 1 head.

    ids [T] ──LM layers (ponder-tiny, frozen)──> residual x [T, d]
                 └─ LM next-token log-probs [T, V] ─> surprise features of every token [T, 3]
    x + W_s · features ──verifier layers (2, trained)──> norm ──> hidden [T, d]
    hidden at step ends ──head [1, d] + sigmoid──> P(step good)   (ponder.kernels.step_scores)

Why: the LM's hidden state at a step end says nothing about whether the step
was right (a linear probe on it scores the base rate), but the LM's own
next-token distribution predicts the right digit of a sum 96% of the time, so
how surprising each written token was to it (log-prob of the token, the best
log-prob, the entropy) flags a slipped digit (line AUROC 0.99). Two causal
verifier layers learn which surprises matter and carry them to the step end
and along the chain. Everything runs packed (`backbone.Segments`); the LM
log-probs are vocabulary-sized ([T, 262] for ponder-tiny), the head is not.

Folder (`save`/`load`): `config.json` (sizes, training metadata),
`model.safetensors` (`lm.*` with transformers' LlamaModel names, `verifier.*`,
`surprise.*`, `norm.*`, `head.*`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from ponder.kernels.step_scores import StepScores, step_scores
from ponder.rewards.backbone import BackboneConfig, DecoderLayer, PackedLlama, RMSNorm, Segments, init_weights
from ponder.rewards.steps import Packed

SURPRISE_FEATURES = 3


def surprise_features(logp: torch.Tensor, ids: torch.Tensor, seq_offsets: torch.Tensor) -> torch.Tensor:
    """[T, 3] for each token t: log P(t | <t), max log-prob and entropy of the LM's prediction of t.

    `logp` [T, V] are the LM's next-token log-probs at every position; the first
    token of each sequence (nothing predicted it) gets zeros.
    """
    prev = logp[:-1]  # [T-1, V], row t-1 predicts token t
    chosen = prev.gather(1, ids[1:, None]).squeeze(1).clamp(min=-20.0)
    best = prev.max(dim=1).values
    entropy = -(prev.exp() * prev).sum(dim=1)
    feats = torch.stack([chosen / 4, best / 4, entropy / 2], dim=1)  # scaled to about unit range
    feats = torch.cat([feats.new_zeros(1, SURPRISE_FEATURES), feats])  # [T, 3]
    first = seq_offsets[:-1][seq_offsets[:-1] < ids.shape[0]]
    feats[first] = 0.0
    return feats


class ProcessRewardModel(nn.Module):
    def __init__(self, cfg: BackboneConfig, verifier_layers: int = 2, meta: dict[str, Any] | None = None) -> None:
        super().__init__()
        self.cfg = cfg
        self.meta = dict(meta or {})
        self.lm = PackedLlama(cfg)
        self.verifier = nn.ModuleList(DecoderLayer(cfg) for _ in range(verifier_layers))
        self.surprise = nn.Linear(SURPRISE_FEATURES, cfg.hidden)
        self.norm = RMSNorm(cfg.hidden, cfg.rms_eps)
        self.head = nn.Linear(cfg.hidden, 1)
        for module in (self.verifier, self.surprise, self.head):
            module.apply(init_weights)
        nn.init.normal_(self.surprise.weight, std=1.0)  # as loud as the residual (RMS ~3) from step 0

    def hidden(self, packed: Packed, tap: int | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """hidden [T, d] for the head; also the normed residual after verifier layer `tap` (training)."""
        seg = Segments.of(packed.seq_offsets, self.cfg, self.lm.embed_tokens.weight.dtype)
        with torch.no_grad():  # the LM is frozen
            x = self.lm.residual(packed.ids, seg)  # [T, d]
            logp = self.lm.lm_logits(self.lm.norm(x)).float().log_softmax(-1)  # [T, V]
            feats = surprise_features(logp, packed.ids, packed.seq_offsets)  # [T, 3]
        x = x + self.surprise(feats.to(x.dtype))
        tapped = None
        for i, layer in enumerate(self.verifier):
            x = layer(x, seg.cos, seg.sin, seg.bounds)
            if i == tap:
                tapped = self.norm(x)
        return self.norm(x), tapped

    def step_logits(self, hidden: torch.Tensor, packed: Packed) -> torch.Tensor:
        """[S] head logits at the step ends (training; inference goes through the kernel)."""
        counts = packed.step_offsets[1:] - packed.step_offsets[:-1]
        starts = torch.repeat_interleave(packed.seq_offsets[:-1], counts, output_size=packed.step_pos.numel())
        return self.head(hidden[starts + packed.step_pos]).squeeze(-1)

    @torch.inference_mode()
    def score(self, packed: Packed, reduce: str = "min", backend: str | None = None) -> StepScores:
        """Step probabilities [S] and per-sequence reduced scores [B] (NaN: no steps)."""
        hidden, _ = self.hidden(packed)  # [T, d]
        return step_scores(hidden, packed.seq_offsets, packed.step_pos, packed.step_offsets,
                           self.head.weight, self.head.bias, reduce, backend=backend)

    @property
    def device(self) -> torch.device:
        return self.head.weight.device

    def trainable(self) -> list[nn.Parameter]:
        return [p for name, p in self.named_parameters() if not name.startswith("lm.")]

    def save(self, folder: str | Path) -> None:
        out = Path(folder)
        out.mkdir(parents=True, exist_ok=True)
        tensors = {k: v.detach().to("cpu", torch.float32).contiguous() for k, v in self.state_dict().items()}
        save_file(tensors, str(out / "model.safetensors"), metadata={"format": "pt"})
        config = {"architecture": "ponder-prm", "backbone": self.cfg.to_dict(),
                  "verifier_layers": len(self.verifier), "head_classes": 1, **self.meta}
        (out / "config.json").write_text(json.dumps(config, indent=2) + "\n")

    @classmethod
    def load(cls, folder: str | Path, device: torch.device | str = "cpu") -> ProcessRewardModel:
        folder = Path(folder)
        config = json.loads((folder / "config.json").read_text())
        cfg = BackboneConfig(**config.pop("backbone"))
        layers = config.pop("verifier_layers")
        meta = {k: v for k, v in config.items() if k not in ("architecture", "head_classes")}
        model = cls(cfg, layers, meta)
        model.load_state_dict({k: v.float() for k, v in load_file(str(folder / "model.safetensors")).items()})
        return model.to(device).eval()

    @classmethod
    def from_causal_lm(cls, folder: str | Path, verifier_layers: int = 2,
                       meta: dict[str, Any] | None = None) -> ProcessRewardModel:
        """A fresh verifier and head on the frozen decoder of a transformers Llama causal LM."""
        lm = backbone_from_causal_lm(folder)
        model = cls(lm.cfg, verifier_layers, meta)
        model.lm.load_state_dict(lm.state_dict())
        model.lm.requires_grad_(False)
        return model


def backbone_from_causal_lm(folder: str | Path) -> PackedLlama:
    """The decoder of a transformers Llama causal-LM folder (tied embeddings) as a `PackedLlama`."""
    folder = Path(folder)
    hf = json.loads((folder / "config.json").read_text())
    rope = hf.get("rope_parameters") or {}
    cfg = BackboneConfig(vocab_size=hf["vocab_size"], hidden=hf["hidden_size"], layers=hf["num_hidden_layers"],
                         heads=hf["num_attention_heads"], intermediate=hf["intermediate_size"],
                         rope_theta=rope.get("rope_theta", hf.get("rope_theta", 10000.0)),
                         rms_eps=hf["rms_norm_eps"], max_positions=hf["max_position_embeddings"])
    if hf.get("num_key_value_heads", cfg.heads) != cfg.heads or hf.get("head_dim", cfg.head_dim) != cfg.head_dim:
        raise ValueError(f"{folder}: grouped-query attention or odd head sizes are not supported")
    if not hf.get("tie_word_embeddings", False):
        raise ValueError(f"{folder}: only tied input/output embeddings are supported")
    model = PackedLlama(cfg)
    tensors = load_file(str(folder / "model.safetensors"))
    model.load_state_dict({k.removeprefix("model."): v.float() for k, v in tensors.items() if k.startswith("model.")})
    return model.eval()
