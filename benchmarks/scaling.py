"""The inference-scaling curve: accuracy against generated tokens, every strategy, several budgets.

    python -m benchmarks.scaling --problems 100 --out artifacts/scaling.json --plot artifacts/scaling.png
    python -m benchmarks.scaling --url http://127.0.0.1:8000 --api-key KEY --quick

Runs held-out ponder-tiny problems (never seen in training) through one Ponder
server with fixed seeds: `direct` (greedy and T=1), `majority_vote` at n = 1..16
(and with early stop, and confidence-weighted), `best_of_n` with each scorer
(plain and weighted), `long_cot` at several thinking budgets and `mcts` at
several iteration counts. For each configuration it prints accuracy, mean
generated tokens per problem (every sample, rollout and round, from `usage`)
and wall time, and saves JSON and a PNG plot (accuracy vs tokens, log scale).
Without `--url` it starts its own server (ponder-tiny) and stops it at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import httpx
from tqdm import tqdm

from ponder.models.tiny_data import heldout_problems
from ponder.serve.launch import ponder_server
from ponder.strategies.answers import answer_key


@dataclass(frozen=True)
class Config:
    family: str  # one line in the plot
    label: str
    body: dict[str, Any]  # extra request fields


def configs(quick: bool, scorers: Sequence[str]) -> list[Config]:
    ns = [1, 2, 4, 8] if quick else [1, 2, 4, 8, 16]
    out = [Config("direct (greedy)", "direct T=0", {"temperature": 0.0})]
    out += [
        Config("majority_vote", f"majority_vote n={n}", {"strategy": {"name": "majority_vote", "n": n}}) for n in ns
    ]
    out += [
        Config(
            "majority_vote early stop",
            f"majority_vote n={ns[-1]} early_stop=0.8",
            {"strategy": {"name": "majority_vote", "n": ns[-1], "early_stop": 0.8, "wave": 2}},
        )
    ]
    if "confidence" in scorers:
        out += [
            Config(
                "majority_vote confidence",
                f"majority_vote n={n} weight=confidence keep=0.5",
                {"strategy": {"name": "majority_vote", "n": n, "weight": "confidence", "keep": 0.5}},
            )
            for n in ns[2:]
        ]
    for scorer in scorers:
        out += [
            Config(
                f"best_of_n {scorer}",
                f"best_of_n n={n} {scorer}",
                {"strategy": {"name": "best_of_n", "n": n, "scorer": scorer}},
            )
            for n in ns[1:]
        ]
        if scorer == "prm":
            out += [
                Config(
                    "best_of_n prm weighted",
                    f"best_of_n n={n} prm weighted",
                    {"strategy": {"name": "best_of_n", "n": n, "scorer": "prm", "weighted": True}},
                )
                for n in ns[2:]
            ]
    budgets = [0, 128, 256] if quick else [0, 64, 128, 256, 512]
    out += [
        Config(
            "long_cot",
            f"long_cot min_tokens={b}",
            {"strategy": "long_cot", "thinking": {"min_tokens": b, "max_tokens": max(768, 2 * b), "max_waits": 8}},
        )
        for b in budgets
    ]
    out += [
        Config("mcts", f"mcts iterations={it}", {"strategy": {"name": "mcts", "iterations": it, "expand_k": 3}})
        for it in ([4, 8] if quick else [4, 8, 16])
    ]
    return out


@dataclass
class Result:
    family: str
    label: str
    accuracy: float
    tokens: float  # mean generated tokens per problem
    prompt_tokens: float
    seconds: float
    errors: int


async def run_config(
    client: httpx.AsyncClient,
    cfg: Config,
    problems: list[Any],
    seed: int,
    temperature: float,
    concurrency: int,
    bar: tqdm,
) -> Result:
    sem = asyncio.Semaphore(concurrency)
    correct, tokens, prompt, errors = 0, 0, 0, 0

    async def one(i: int, problem: Any) -> None:
        nonlocal correct, tokens, prompt, errors
        body = {
            "model": "ponder-tiny",
            "messages": problem.messages,
            "max_tokens": 512,
            "temperature": temperature,
            "seed": seed + 1000 * i,
            **cfg.body,
        }
        async with sem:
            r = await client.post("/v1/chat/completions", json=body)
        bar.update(1)
        if r.status_code != 200:
            errors += 1
            return
        data = r.json()
        got = answer_key(data["choices"][0]["message"]["content"] or "")
        correct += got == str(problem.answer)
        tokens += data["usage"]["completion_tokens"]
        prompt += data["usage"]["prompt_tokens"]

    start = time.monotonic()
    await asyncio.gather(*(one(i, p) for i, p in enumerate(problems)))
    n = len(problems)
    return Result(cfg.family, cfg.label, correct / n, tokens / n, prompt / n, time.monotonic() - start, errors)


def table(results: list[Result]) -> str:
    lines = [f"{'configuration':44} {'accuracy':>8} {'tokens/problem':>15} {'seconds':>8} {'errors':>6}", "-" * 86]
    lines += [f"{r.label:44} {r.accuracy:8.1%} {r.tokens:15.0f} {r.seconds:8.1f} {r.errors:6d}" for r in results]
    return "\n".join(lines)


def plot(results: list[Result], path: str, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9, 6))
    families: dict[str, list[Result]] = {}
    for r in results:
        families.setdefault(r.family, []).append(r)
    for family, rs in families.items():
        rs = sorted(rs, key=lambda r: r.tokens)
        ax.plot([r.tokens for r in rs], [100 * r.accuracy for r in rs], marker="o", label=family)
    ax.set_xscale("log", base=2)
    ax.set_xlabel("generated tokens per problem (all samples, rollouts and rounds)")
    ax.set_ylabel("accuracy on held-out problems (%)")
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


async def run(args: argparse.Namespace, url: str, key: str | None) -> list[Result]:
    problems = heldout_problems(args.problems, seed=args.seed)
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=600) as client:
        have = {m["id"] for m in (await client.get("/v1/models")).json()["data"]}
        assert "ponder-tiny" in have, f"the server does not serve ponder-tiny: {sorted(have)}"
        scorers = [s for s in args.scorers.split(",") if s]
        cfgs = configs(args.quick, scorers)
        if args.only:
            cfgs = [c for c in cfgs if any(o in c.label for o in args.only.split(","))]
        results = []
        with tqdm(total=len(cfgs) * len(problems), desc="scaling", unit="req") as bar:
            for cfg in cfgs:
                bar.set_postfix_str(cfg.label)
                results.append(
                    await run_config(client, cfg, problems, args.seed, args.temperature, args.concurrency, bar)
                )
    return results


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--url", help="a running Ponder server (default: start one on ponder-tiny)")
    p.add_argument("--api-key", default=os.environ.get("PONDER_API_KEY"))
    p.add_argument("--problems", type=int, default=100)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--temperature", type=float, default=1.0)
    p.add_argument("--concurrency", type=int, default=8)
    p.add_argument("--scorers", default="confidence,prm,orm", help="best_of_n scorers to include")
    p.add_argument("--only", help="comma-separated substrings of configuration labels to run")
    p.add_argument("--quick", action="store_true", help="fewer budgets (about a third of the time)")
    p.add_argument("--out", default="artifacts/scaling.json")
    p.add_argument("--plot", default="artifacts/scaling.png")
    args = p.parse_args(argv)
    for path in (args.out, args.plot):
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    if args.url:
        results = asyncio.run(run(args, args.url, args.api_key))
    else:
        with ponder_server(["--model", "ponder-tiny"], api_key="scaling", progress=True) as server:
            results = asyncio.run(run(args, server.url, server.api_key))
    print(
        f"\nponder-tiny, {args.problems} held-out problems, T={args.temperature}, seed {args.seed} "
        f"(CPU run; tokens = generated tokens per problem from usage)"
    )
    print(table(results))
    with open(args.out, "w") as f:
        json.dump(
            {
                "problems": args.problems,
                "seed": args.seed,
                "temperature": args.temperature,
                "results": [asdict(r) for r in results],
            },
            f,
            indent=1,
        )
    plot(results, args.plot, f"ponder-tiny inference scaling ({args.problems} held-out problems, CPU)")
    print(f"saved {args.out} and {args.plot}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
