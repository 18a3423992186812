"""Train ponder-tiny's process reward model on the CPU: `python -m ponder.rewards.train_prm`.

Data: generator traces (`tiny_data`, clean and negative) plus ponder-tiny's own
samples on training problems, every step labelled by `label_steps`. Model
(`prm_model`): ponder-tiny's decoder, frozen, whose next-token surprise feeds two
trained verifier layers and a d -> 1 head. Loss: binary cross-entropy at the
step ends, plus an auxiliary BCE on the result digits of every sum line (does
the sum so far agree with a+b?) read after the first verifier layer, so the
second one can carry that verdict to the step end. Batches are packed (no
padding). Deterministic: seeded data and sampling, fixed batch order,
`torch.manual_seed`, a fixed thread count (`--threads`, default 2). Writes the
folder the `prm` and `orm` scorers load, then evaluates on held-out problems.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from tqdm import tqdm

from ponder.rewards.eval_prm import DEFAULT_POLICY, evaluate, print_report
from ponder.rewards.policy import load_policy, sample
from ponder.rewards.prm import prm_folder_for
from ponder.rewards.prm_data import Record, generator_records, make_record, summary, training_prompts
from ponder.rewards.prm_model import ProcessRewardModel
from ponder.rewards.steps import pack_candidates


@dataclass(frozen=True)
class TrainConfig:
    steps: int = 800
    batch_size: int = 32
    lr: float = 2e-3
    min_lr_ratio: float = 0.1
    warmup: int = 30
    weight_decay: float = 0.1
    digit_weight: float = 1.0  # 0: no dense digit targets
    verifier_layers: int = 2
    generator_traces: int = 12000
    negative: float = 0.4
    policy_prompts: int = 600  # 0: generator traces only
    policy_samples: int = 4
    seed: int = 0
    threads: int = 2

    def __post_init__(self) -> None:
        if self.steps < 1 or self.batch_size < 1 or self.warmup < 0 or self.verifier_layers < 1:
            raise ValueError("steps, batch_size and verifier_layers must be positive")
        if not 0 <= self.negative <= 1 or self.digit_weight < 0:
            raise ValueError("negative must be in [0, 1] and digit_weight >= 0")


def lr_at(step: int, cfg: TrainConfig) -> float:
    if step < cfg.warmup:
        return cfg.lr * (step + 1) / cfg.warmup
    progress = (step - cfg.warmup) / max(1, cfg.steps - cfg.warmup)
    return cfg.lr * (cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress)))


def policy_records(policy: Path, cfg: TrainConfig) -> list[Record]:
    """ponder-tiny's samples on training problems, labelled step by step."""
    if cfg.policy_prompts == 0:
        return []
    prompts = training_prompts(cfg.policy_prompts, cfg.seed)
    samples = sample(load_policy(policy), prompts, cfg.policy_samples, seed=cfg.seed, desc="on-policy samples")
    recs = [make_record(s.prompt, s.completion, s.text, prompts[s.prompt_index].operands, "policy") for s in samples]
    return [r for r in recs if r is not None]


def batch_loss(model: ProcessRewardModel, digit_head: torch.nn.Linear | None, batch: list[Record],
               cfg: TrainConfig) -> tuple[torch.Tensor, dict[str, float]]:
    """Step BCE + digit_weight x digit BCE; also returns step BCE / accuracy and digit accuracy."""
    packed = pack_candidates([(r.prompt, r.completion) for r in batch])
    hidden, tapped = model.hidden(packed, tap=0 if digit_head is not None else None)  # [T, d]
    logits = model.step_logits(hidden, packed)  # [S]
    labels = torch.tensor([x for r in batch for x in r.labels])
    loss = F.binary_cross_entropy_with_logits(logits, labels)
    stats = {"bce": loss.item(), "acc": float(((logits > 0).float() == labels).float().mean())}
    if digit_head is not None and tapped is not None:
        rows = [int(packed.seq_offsets[b]) + len(r.prompt) + p for b, r in enumerate(batch) for p in r.digits]
        if rows:
            digit_logits = digit_head(tapped[torch.tensor(rows)]).squeeze(-1)  # [D]
            digit_labels = torch.tensor([x for r in batch for x in r.digit_labels])
            loss = loss + cfg.digit_weight * F.binary_cross_entropy_with_logits(digit_logits, digit_labels)
            stats["digit_acc"] = float(((digit_logits > 0).float() == digit_labels).float().mean())
    return loss, stats


def train(cfg: TrainConfig, out: Path, policy: Path) -> dict[str, Any]:
    torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    torch.use_deterministic_algorithms(True, warn_only=True)
    t0 = time.monotonic()
    records = generator_records(cfg.generator_traces, cfg.seed, cfg.negative) + policy_records(policy, cfg)
    print(f"training data: {summary(records)}")
    data_s = time.monotonic() - t0
    model = ProcessRewardModel.from_causal_lm(policy, cfg.verifier_layers)
    digit_head = torch.nn.Linear(model.cfg.hidden, 1) if cfg.digit_weight > 0 else None  # training only
    params = model.trainable() + (list(digit_head.parameters()) if digit_head else [])
    n_params = sum(p.numel() for p in model.parameters())
    n_trained = sum(p.numel() for p in model.trainable())
    print(f"PRM: {n_params / 1e6:.2f}M parameters ({n_trained / 1e6:.2f}M trained), "
          f"{cfg.steps} steps of {cfg.batch_size} traces")
    groups: list[dict[str, Any]] = [
        {"params": [p for p in params if p.dim() >= 2], "weight_decay": cfg.weight_decay},
        {"params": [p for p in params if p.dim() < 2]},
    ]
    opt = torch.optim.AdamW(groups, lr=cfg.lr, weight_decay=0.0, betas=(0.9, 0.95))
    rng = random.Random(cfg.seed)
    order: list[int] = []
    bar = tqdm(range(cfg.steps), desc="train-prm", unit="step")
    ema: dict[str, float] = {}
    t1 = time.monotonic()
    for step in bar:
        if len(order) < cfg.batch_size:
            epoch = list(range(len(records)))
            rng.shuffle(epoch)
            order += epoch
        batch, order = [records[i] for i in order[: cfg.batch_size]], order[cfg.batch_size :]
        for group in opt.param_groups:
            group["lr"] = lr_at(step, cfg)
        loss, stats = batch_loss(model, digit_head, batch, cfg)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        ema = {k: 0.95 * ema.get(k, v) + 0.05 * v for k, v in {**stats, "loss": loss.item()}.items()}
        bar.set_postfix({k: f"{v:.3f}" for k, v in ema.items()})
    train_s = time.monotonic() - t1
    model.eval()
    model.meta = {"base_model": "ponder-tiny", "params": n_params, "trained_params": n_trained,
                  "train_config": asdict(cfg), "train_data": summary(records),
                  "data_seconds": round(data_s), "train_seconds": round(train_s)}
    model.save(out)
    print(f"trained in {train_s / 60:.1f} min (+{data_s / 60:.1f} min data); saved to {out}")
    return model.meta


def main(argv: list[str] | None = None) -> int:
    d = TrainConfig()
    p = argparse.ArgumentParser(prog="ponder train-prm", description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=prm_folder_for(DEFAULT_POLICY), help="output folder")
    p.add_argument("--policy", type=Path, default=DEFAULT_POLICY,
                   help="ponder-tiny folder: the frozen decoder, and the model sampled for on-policy data")
    p.add_argument("--eval-problems", type=int, default=200, help="held-out problems to evaluate on (0: skip)")
    p.add_argument("--eval-n", type=int, default=8, help="samples per held-out problem for Best-of-N")
    for name, value in asdict(d).items():
        p.add_argument(f"--{name.replace('_', '-')}", type=type(value), default=value)
    a = p.parse_args(argv)
    cfg = TrainConfig(**{k: getattr(a, k) for k in asdict(d)})
    if not (a.policy / "model.safetensors").is_file():
        p.error(f"{a.policy} has no model.safetensors; train ponder-tiny first (ponder train-tiny)")
    train(cfg, a.out, a.policy)
    if a.eval_problems > 0:
        result = evaluate(ProcessRewardModel.load(a.out), a.policy, a.eval_problems, a.eval_n, cfg.seed + 1)
        print_report(result)
        config = json.loads((a.out / "config.json").read_text())
        (a.out / "config.json").write_text(json.dumps({**config, "eval": result}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
