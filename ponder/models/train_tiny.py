"""Train `ponder-tiny` from scratch on the CPU: `python -m ponder.models.train_tiny`.

A plain transformers `LlamaForCausalLM` learns the synthetic addition traces of
`tiny_data` (loss on the assistant completion only, `<|end|>` included). Fully
deterministic: seeded data, fixed batch order, `torch.manual_seed`, two threads.
The output folder (default `ponder/models/ponder-tiny/`) is a Hugging Face model
folder vLLM loads as is: config.json, generation_config.json, float32
model.safetensors, tokenizer.json and tokenizer_config.json.
"""

from __future__ import annotations

import argparse
import math
import os
import random
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

# The cores are shared with other jobs: a passive OpenMP wait stops our two threads
# from spinning against them (3x faster under load here). Read when torch loads.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch  # noqa: E402
from tqdm import tqdm  # noqa: E402

from ponder.models.tiny_data import DataConfig, make_example  # noqa: E402
from ponder.models.tiny_tokenizer import (  # noqa: E402
    END_ID,
    MODEL_MAX_LENGTH,
    VOCAB_SIZE,
    build_tokenizer,
    write_tokenizer,
)

DEFAULT_OUT = Path(__file__).parent / "ponder-tiny"
IGNORE = -100


@dataclass(frozen=True)
class TrainConfig:
    steps: int = 700
    batch_size: int = 64
    lr: float = 2e-3
    min_lr_ratio: float = 0.1
    warmup: int = 50
    weight_decay: float = 0.1
    layers: int = 4
    hidden: int = 192
    heads: int = 6
    intermediate: int = 512
    seed: int = 0
    threads: int = 2

    def __post_init__(self) -> None:
        if self.hidden % self.heads:
            raise ValueError("hidden must be a multiple of heads")
        if self.hidden // self.heads not in (32, 64, 80, 96, 112, 128):
            raise ValueError("head size must be one vLLM's CPU attention supports")
        if self.steps < 1 or self.batch_size < 1 or self.warmup < 0:
            raise ValueError("steps and batch_size must be positive")


def render_prompt(messages: list[dict[str, str]]) -> str:
    """The chat template of tiny_tokenizer, in Python (tests compare the two)."""
    parts = []
    for m in messages:
        role = "system" if m["role"] == "developer" else m["role"]
        parts.append(f"<|{role}|>{m['content']}<|end|>")
    return "".join(parts) + "<|assistant|>"


def encode_examples(n: int, seed: int) -> list[tuple[list[int], int]]:
    """`n` training sequences as (token ids, prompt length)."""
    tok = build_tokenizer()
    rng = random.Random(seed)
    data_cfg = DataConfig()
    out = []
    for _ in range(n):
        ex = make_example(rng, data_cfg)
        prompt = tok.encode(render_prompt(ex.messages), add_special_tokens=False).ids
        completion = tok.encode(ex.completion, add_special_tokens=False).ids + [END_ID]
        out.append((prompt + completion, len(prompt)))
    return out


def batches(seqs: list[tuple[list[int], int]], size: int, seed: int) -> list[torch.Tensor]:
    """Length-bucketed batches (16 batches per bucket) in a seeded order.

    Each batch is a (2, B, T) tensor: input ids (right-padded with `<|end|>`) and
    labels (-100 on the prompt and the padding).
    """
    rng = random.Random(seed)
    out: list[torch.Tensor] = []
    chunk = size * 16
    for i in range(0, len(seqs) - size + 1, chunk):
        bucket = sorted(seqs[i : i + chunk], key=lambda s: len(s[0]))
        group = [bucket[j : j + size] for j in range(0, len(bucket) - size + 1, size)]
        rng.shuffle(group)
        for b in group:
            width = max(len(ids) for ids, _ in b)
            t = torch.full((2, len(b), width), IGNORE, dtype=torch.long)
            t[0].fill_(END_ID)
            for row, (ids, plen) in enumerate(b):
                t[0, row, : len(ids)] = torch.tensor(ids)
                t[1, row, plen : len(ids)] = torch.tensor(ids[plen:])
            out.append(t)
    return out


def build_model(cfg: TrainConfig) -> torch.nn.Module:
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        vocab_size=VOCAB_SIZE,
        hidden_size=cfg.hidden,
        intermediate_size=cfg.intermediate,
        num_hidden_layers=cfg.layers,
        num_attention_heads=cfg.heads,
        num_key_value_heads=cfg.heads,
        max_position_embeddings=MODEL_MAX_LENGTH,
        rope_parameters={"rope_type": "default", "rope_theta": 10000.0},
        tie_word_embeddings=True,
        bos_token_id=None,
        eos_token_id=END_ID,
        pad_token_id=END_ID,
    )
    return LlamaForCausalLM(config)


def lr_at(step: int, cfg: TrainConfig) -> float:
    if step < cfg.warmup:
        return cfg.lr * (step + 1) / cfg.warmup
    progress = (step - cfg.warmup) / max(1, cfg.steps - cfg.warmup)
    cosine = 0.5 * (1 + math.cos(math.pi * progress))
    return cfg.lr * (cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * cosine)


def _optimizer(model: torch.nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    groups: list[dict[str, Any]] = [
        {"params": decay, "weight_decay": cfg.weight_decay},
        {"params": no_decay},
    ]
    return torch.optim.AdamW(groups, lr=cfg.lr, weight_decay=0.0, betas=(0.9, 0.95))


def train(cfg: TrainConfig, out: Path, checkpoint: Path | None = None, every: int = 50) -> float:
    """Train, save to `out`, return the wall time in seconds.

    With `checkpoint`, the model and optimizer state are written there every
    `every` steps and a run resumes from it; the data order is fixed, so a resumed
    run continues exactly where the interrupted one stopped.
    """
    torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    torch.use_deterministic_algorithms(True, warn_only=True)
    seqs = encode_examples(cfg.steps * cfg.batch_size + 16 * cfg.batch_size, cfg.seed)
    data = batches(seqs, cfg.batch_size, cfg.seed)[: cfg.steps]
    model = build_model(cfg)
    opt = _optimizer(model, cfg)
    n_params = sum(p.numel() for p in model.parameters())
    print(f"ponder-tiny: {n_params / 1e6:.2f}M parameters, {len(data)} steps of {cfg.batch_size}")
    first, ema = 0, None
    if checkpoint is not None and checkpoint.exists():
        state = torch.load(checkpoint, weights_only=False)
        if state["cfg"] != asdict(cfg):
            raise SystemExit(f"{checkpoint} is from another configuration: {state['cfg']}")
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["opt"])
        first, ema = state["step"], state["ema"]
        print(f"resumed from {checkpoint} at step {first}")
    model.train()
    start = time.monotonic()
    bar = tqdm(range(first, len(data)), desc="train", unit="step", initial=first, total=len(data))
    for step in bar:
        for group in opt.param_groups:
            group["lr"] = lr_at(step, cfg)
        ids, labels = data[step][0], data[step][1]
        loss = model(input_ids=ids, labels=labels).loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        ema = loss.item() if ema is None else 0.95 * ema + 0.05 * loss.item()
        bar.set_postfix(loss=f"{ema:.4f}", lr=f"{lr_at(step, cfg):.1e}")
        if checkpoint is not None and (step + 1) % every == 0 and step + 1 < len(data):
            state = {"step": step + 1, "ema": ema, "cfg": asdict(cfg)}
            torch.save({**state, "model": model.state_dict(), "opt": opt.state_dict()}, checkpoint)
    elapsed = time.monotonic() - start
    save(model, out)
    print(f"trained in {elapsed / 60:.1f} min (this run); final loss {ema:.4f}; saved to {out}")
    return elapsed


def save(model: torch.nn.Module, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    model.eval()
    model.to(torch.float32).save_pretrained(out, safe_serialization=True)  # type: ignore[operator]
    write_tokenizer(out)  # also replaces generation_config.json with ours


def main(argv: list[str] | None = None) -> int:
    d = TrainConfig()
    p = argparse.ArgumentParser(prog="ponder train-tiny", description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output model folder")
    p.add_argument("--steps", type=int, default=d.steps)
    p.add_argument("--batch-size", type=int, default=d.batch_size)
    p.add_argument("--lr", type=float, default=d.lr)
    p.add_argument("--layers", type=int, default=d.layers)
    p.add_argument("--hidden", type=int, default=d.hidden)
    p.add_argument("--heads", type=int, default=d.heads)
    p.add_argument("--intermediate", type=int, default=d.intermediate)
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--threads", type=int, default=d.threads)
    p.add_argument("--checkpoint", type=Path, help="save here every 50 steps; resume if it exists")
    a = p.parse_args(argv)
    cfg = TrainConfig(
        steps=a.steps,
        batch_size=a.batch_size,
        lr=a.lr,
        layers=a.layers,
        hidden=a.hidden,
        heads=a.heads,
        intermediate=a.intermediate,
        seed=a.seed,
        threads=a.threads,
    )
    train(cfg, a.out, a.checkpoint)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
