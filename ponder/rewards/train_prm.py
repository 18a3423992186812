"""Train ponder-tiny's process reward model on the CPU: `python -m ponder.rewards.train_prm`.

Data: generator traces (`tiny_data`, clean and negative) plus ponder-tiny's own
samples on training problems (when the model folder exists), every step labelled
by `label_steps`. Model: a `PackedLlama` backbone of its own plus a d -> 1 head,
trained with binary cross-entropy at the step ends and, on clean generator
traces, an auxiliary next-token loss (it teaches the backbone the arithmetic it
has to check). Batches are packed (no padding). Deterministic: seeded data,
fixed batch order, `torch.manual_seed`, two threads. Writes the folder the `prm`
and `orm` scorers load, then evaluates on held-out problems (`eval_prm`).
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

from ponder.rewards.backbone import BackboneConfig
from ponder.rewards.eval_prm import DEFAULT_POLICY, evaluate, print_report
from ponder.rewards.policy import load_policy, sample
from ponder.rewards.prm import prm_folder_for
from ponder.rewards.prm_data import Record, generator_records, make_record, summary, training_prompts
from ponder.rewards.prm_model import ProcessRewardModel, pack_candidates


@dataclass(frozen=True)
class TrainConfig:
    steps: int = 1200
    batch_size: int = 32
    lr: float = 2e-3
    min_lr_ratio: float = 0.1
    warmup: int = 50
    weight_decay: float = 0.1
    lm_weight: float = 0.5
    generator_traces: int = 24000
    negative: float = 0.4
    policy_prompts: int = 1500
    policy_samples: int = 4
    layers: int = 4
    hidden: int = 192
    heads: int = 6
    intermediate: int = 512
    seed: int = 0
    threads: int = 2

    def __post_init__(self) -> None:
        if self.steps < 1 or self.batch_size < 1 or self.warmup < 0:
            raise ValueError("steps and batch_size must be positive")
        if not 0 <= self.negative <= 1 or self.lm_weight < 0:
            raise ValueError("negative must be in [0, 1] and lm_weight >= 0")

    def backbone(self) -> BackboneConfig:
        return BackboneConfig(hidden=self.hidden, layers=self.layers, heads=self.heads,
                              intermediate=self.intermediate)


def lr_at(step: int, cfg: TrainConfig) -> float:
    if step < cfg.warmup:
        return cfg.lr * (step + 1) / cfg.warmup
    progress = (step - cfg.warmup) / max(1, cfg.steps - cfg.warmup)
    return cfg.lr * (cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress)))


def policy_records(policy: Path | None, cfg: TrainConfig) -> list[Record]:
    """ponder-tiny's samples on training problems, labelled step by step."""
    if policy is None or not (policy / "model.safetensors").is_file() or cfg.policy_prompts == 0:
        print("no on-policy data (no ponder-tiny weights)")
        return []
    prompts = training_prompts(cfg.policy_prompts, cfg.seed)
    samples = sample(load_policy(policy), prompts, cfg.policy_samples, seed=cfg.seed, desc="on-policy samples")
    recs = [make_record(s.prompt, s.completion, s.text, prompts[s.prompt_index].operands, "policy") for s in samples]
    return [r for r in recs if r is not None]


def batch_loss(model: ProcessRewardModel, batch: list[Record], lm_weight: float) -> tuple[torch.Tensor, float]:
    """BCE at the step ends + lm_weight x next-token CE on LM records; returns (loss, step accuracy)."""
    packed = pack_candidates([(r.prompt, r.completion) for r in batch])
    hidden = model.backbone(packed.ids, packed.seq_offsets)  # [T, d]
    logits = model.step_logits(hidden, packed)  # [S]
    labels = torch.tensor([x for r in batch for x in r.labels])
    loss = F.binary_cross_entropy_with_logits(logits, labels)
    if lm_weight > 0:
        rows: list[int] = []
        targets: list[int] = []
        for b, r in enumerate(batch):
            start, n_prompt = int(packed.seq_offsets[b]), len(r.prompt)
            if r.lm and r.completion:
                rows += range(start + n_prompt - 1, start + n_prompt + len(r.completion) - 1)
                targets += r.completion
        if rows:
            lm_logits = model.backbone.lm_logits(hidden[torch.tensor(rows)])
            loss = loss + lm_weight * F.cross_entropy(lm_logits, torch.tensor(targets))
    acc = float(((logits > 0).float() == labels).float().mean())
    return loss, acc


def train(cfg: TrainConfig, out: Path, policy: Path | None) -> dict[str, object]:
    torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    torch.use_deterministic_algorithms(True, warn_only=True)
    t0 = time.monotonic()
    records = generator_records(cfg.generator_traces, cfg.seed, cfg.negative) + policy_records(policy, cfg)
    print(f"training data: {summary(records)}")
    data_s = time.monotonic() - t0
    model = ProcessRewardModel(cfg.backbone())
    n_params = sum(p.numel() for p in model.parameters())
    print(f"PRM: {n_params / 1e6:.2f}M parameters, {cfg.steps} steps of {cfg.batch_size} traces")
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    groups: list[dict[str, Any]] = [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay}]
    opt = torch.optim.AdamW(groups,
                            lr=cfg.lr, weight_decay=0.0, betas=(0.9, 0.95))
    rng = random.Random(cfg.seed)
    order: list[int] = []
    model.train()
    bar = tqdm(range(cfg.steps), desc="train-prm", unit="step")
    ema: tuple[float, float] | None = None
    t1 = time.monotonic()
    for step in bar:
        if len(order) < cfg.batch_size:
            epoch = list(range(len(records)))
            rng.shuffle(epoch)
            order += epoch
        batch, order = [records[i] for i in order[: cfg.batch_size]], order[cfg.batch_size :]
        for group in opt.param_groups:
            group["lr"] = lr_at(step, cfg)
        loss, acc = batch_loss(model, batch, cfg.lm_weight)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        ema = (loss.item(), acc) if ema is None else (0.95 * ema[0] + 0.05 * loss.item(), 0.95 * ema[1] + 0.05 * acc)
        bar.set_postfix(loss=f"{ema[0]:.4f}", step_acc=f"{ema[1]:.3f}", lr=f"{lr_at(step, cfg):.1e}")
    train_s = time.monotonic() - t1
    model.eval()
    meta = {"base_model": "ponder-tiny", "params": n_params, "train_config": asdict(cfg),
            "train_data": summary(records), "data_seconds": round(data_s), "train_seconds": round(train_s)}
    model.meta = meta
    model.save(out)
    print(f"trained in {train_s / 60:.1f} min (+{data_s / 60:.1f} min data); saved to {out}")
    return meta


def main(argv: list[str] | None = None) -> int:
    d = TrainConfig()
    p = argparse.ArgumentParser(prog="ponder train-prm", description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=prm_folder_for(DEFAULT_POLICY), help="output folder")
    p.add_argument("--policy", type=Path, default=DEFAULT_POLICY,
                   help="ponder-tiny folder for on-policy samples ('none': generator data only)")
    p.add_argument("--eval-problems", type=int, default=200, help="held-out problems to evaluate on (0: skip)")
    p.add_argument("--eval-n", type=int, default=8, help="samples per held-out problem for Best-of-N")
    for name, value in asdict(d).items():
        p.add_argument(f"--{name.replace('_', '-')}", type=type(value), default=value)
    a = p.parse_args(argv)
    cfg = TrainConfig(**{k: getattr(a, k) for k in asdict(d)})
    policy = None if str(a.policy) == "none" else a.policy
    meta = train(cfg, a.out, policy)
    if a.eval_problems > 0:
        result = evaluate(ProcessRewardModel.load(a.out), policy, a.eval_problems, a.eval_n, cfg.seed + 1)
        print_report(result)
        meta["eval"] = result
        config = json.loads((a.out / "config.json").read_text())
        (a.out / "config.json").write_text(json.dumps({**config, "eval": result}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
