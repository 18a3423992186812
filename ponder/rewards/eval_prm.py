"""Evaluate the process reward model: `python -m ponder.rewards.eval_prm`.

On held-out problems (never in training) it reports
- step level: accuracy at 0.5 and AUROC of P(step good) against `label_steps`,
  on generator traces (clean and with uncorrected slips) and on ponder-tiny's
  own samples;
- Best-of-N: on `n` ponder-tiny samples per held-out problem, the accuracy of
  the answer picked by each scorer (PRM min/prod/last/mean, ORM, confidence;
  plain and weighted) next to per-sample accuracy, majority vote and pass@n.
Scoring goes through the real `prm`/`orm`/`confidence` scorer objects.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from ponder.rewards.base import Candidate
from ponder.rewards.confidence import ConfidenceScorer
from ponder.rewards.policy import PolicySample, load_policy, sample
from ponder.rewards.prm import RewardModelScorer, prm_folder_for
from ponder.rewards.prm_data import Record, heldout_generator_records, heldout_prompts, make_record, summary
from ponder.rewards.prm_model import ProcessRewardModel
from ponder.rewards.steps import pack_candidates
from ponder.strategies.answers import extract_answer, normalize_answer
from ponder.strategies.voting import tally

DEFAULT_POLICY = Path(__file__).resolve().parents[1] / "models" / "ponder-tiny"


def auroc(scores: Sequence[float], labels: Sequence[float]) -> float:
    """Area under the ROC curve (Mann-Whitney U with average ranks for ties); NaN if one class."""
    s, y = torch.tensor(scores, dtype=torch.float64), torch.tensor(labels) > 0.5
    pos, neg = int(y.sum()), int((~y).sum())
    if pos == 0 or neg == 0:
        return float("nan")
    order = torch.argsort(s)
    ranks = torch.empty_like(s)
    ranks[order] = torch.arange(1, len(s) + 1, dtype=torch.float64)
    for v in torch.unique(s):  # average the ranks of ties
        tie = s == v
        ranks[tie] = ranks[tie].mean()
    return float((ranks[y].sum() - pos * (pos + 1) / 2) / (pos * neg))


@torch.inference_mode()
def record_step_probs(model: ProcessRewardModel, records: Sequence[Record], batch: int = 64) -> list[list[float]]:
    """P(step good) for every step of every record (packed forward, `batch` records at a time)."""
    out: list[list[float]] = []
    for i in range(0, len(records), batch):
        chunk = records[i : i + batch]
        packed = pack_candidates([(r.prompt, r.completion) for r in chunk], device=model.device)
        probs = model.score(packed, "min").step_probs.tolist()
        bounds = packed.step_offsets.tolist()
        out += [probs[bounds[b] : bounds[b + 1]] for b in range(len(chunk))]
    return out


def step_metrics(model: ProcessRewardModel, records: Sequence[Record]) -> dict[str, float]:
    probs = record_step_probs(model, records)
    p = [x for row in probs for x in row]
    y = [x for r in records for x in r.labels]
    acc = sum((a >= 0.5) == (b > 0.5) for a, b in zip(p, y, strict=True)) / max(1, len(p))
    # trace level: do traces with every step right outrank traces with a wrong step (min over steps)?
    t_score = [min(row) for row in probs]
    t_label = [float(min(r.labels)) for r in records]
    return {"traces": len(records), "steps": len(p), "accuracy": acc, "auroc": auroc(p, y),
            "trace_auroc": auroc(t_score, t_label)}


def _key(text: str) -> str | None:
    found = extract_answer(text)
    return None if found is None else normalize_answer(found)


def best_of_n(samples: Sequence[PolicySample], truth: Sequence[int], n: int,
              scorers: dict[str, tuple[Any, str | None]]) -> dict[str, float]:
    """Accuracy of each selection rule over problems (samples grouped n per problem, in order)."""
    groups = [samples[i : i + n] for i in range(0, len(samples), n)]
    hits: dict[str, float] = {}

    def add(name: str, ok: float) -> None:
        hits[name] = hits.get(name, 0.0) + float(ok)

    for group, t in zip(groups, truth, strict=True):
        want = str(t)
        keys = [_key(s.text) for s in group]
        add("per-sample", sum(k == want for k in keys) / len(keys))
        add("pass@n", want in keys)
        add("majority", (r[0].answer if (r := tally((i, k, 1.0) for i, k in enumerate(keys))) else None) == want)
        cands = [Candidate(s.prompt, s.completion, s.text, s.logprobs()) for s in group]
        for name, (scorer, agg) in scorers.items():
            scores = [c.score for c in asyncio.run(scorer.score(cands, agg))]
            best = max(range(len(group)), key=lambda i: (scores[i], -i))
            add(name, keys[best] == want)
            ranked = tally((i, k, max(0.0, scores[i])) for i, k in enumerate(keys))
            add(f"{name} weighted", bool(ranked) and ranked[0].answer == want)
    return {k: v / len(groups) for k, v in hits.items()}


def default_scorers(model: ProcessRewardModel) -> dict[str, tuple[Any, str | None]]:
    prm, orm, conf = RewardModelScorer(model, "prm"), RewardModelScorer(model, "orm"), ConfidenceScorer()
    out: dict[str, tuple[Any, str | None]] = {f"prm {a}": (prm, a) for a in ("min", "prod", "last", "mean")}
    out["orm"] = (orm, None)
    out |= {f"confidence {m}": (conf, m) for m in ("lowest", "bottom10", "tail", "mean")}
    return out


def evaluate(model: ProcessRewardModel, policy_folder: Path | None, problems: int, n: int, seed: int,
             temperature: float = 1.0) -> dict[str, Any]:
    """Step metrics on held-out generator and policy traces, and the Best-of-N table."""
    t0 = time.monotonic()
    gen = heldout_generator_records(problems, seed)
    print(f"held-out generator traces: {summary(gen)}")
    result: dict[str, Any] = {"heldout_generator": step_metrics(model, gen)}
    if policy_folder is not None and (policy_folder / "model.safetensors").is_file():
        prompts = heldout_prompts(problems, seed)
        samples = sample(load_policy(policy_folder), prompts, n, temperature=temperature, seed=seed + 1,
                         desc="held-out samples")
        recs = [make_record(s.prompt, s.completion, s.text, prompts[s.prompt_index].operands, "policy")
                for s in samples]
        policy = [r for r in recs if r is not None]
        print(f"held-out ponder-tiny samples: {summary(policy)}")
        result["heldout_policy"] = step_metrics(model, policy)
        truth = [sum(p.operands or ()) for p in prompts]
        result["best_of_n"] = best_of_n(samples, truth, n, default_scorers(model))
        result["best_of_n_setup"] = {"problems": problems, "n": n, "temperature": temperature}
    result["seconds"] = time.monotonic() - t0
    return result


def print_report(r: dict[str, Any]) -> None:
    print("\nstep level (held-out)            traces   steps  accuracy  AUROC  trace-AUROC(min)")
    for name in ("heldout_generator", "heldout_policy"):
        if name in r:
            m = r[name]
            print(f"  {name:30} {m['traces']:6d} {m['steps']:7d}  {m['accuracy']:7.1%}  "
                  f"{m['auroc']:.3f}  {m['trace_auroc']:.3f}")
    if "best_of_n" in r:
        s = r["best_of_n_setup"]
        print(f"\nBest-of-{s['n']} on {s['problems']} held-out problems (T={s['temperature']}): accuracy of the pick")
        for name, acc in r["best_of_n"].items():
            print(f"  {name:28} {acc:6.1%}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="ponder eval-prm", description=__doc__.splitlines()[0])
    p.add_argument("--prm", type=Path, default=prm_folder_for(DEFAULT_POLICY), help="reward model folder")
    p.add_argument("--policy", type=Path, default=DEFAULT_POLICY, help="ponder-tiny folder to sample")
    p.add_argument("--problems", type=int, default=200)
    p.add_argument("-n", type=int, default=8, help="samples per problem")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=2)
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    print_report(evaluate(ProcessRewardModel.load(a.prm), a.policy, a.problems, a.n, a.seed))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
