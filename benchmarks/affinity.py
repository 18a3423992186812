"""Prefix-affinity routing on and off: the same MCTS and Best-of-N workload over two vLLM replicas.

    python -m benchmarks.affinity --out artifacts/affinity.json
    python -m benchmarks.affinity --urls http://10.0.0.5:8000 http://10.0.0.6:8000 --folder MODEL_DIR

Each session is one client working on one long shared context (a system
prompt of `--doc-tokens` tokens): `best_of_n` sends `--questions` requests
about it one after another (n samples each); `mcts` sends `--questions`
tree searches about it, each made of many engine requests that extend the
same prompt. Sessions run `--concurrency` at a time, with a short pause
between a session's requests (`--think-time`). Both routing modes see
exactly the same requests (same seeds), and every replica's prefix cache is
emptied before each mode (vLLM's `/reset_prefix_cache`, a dev endpoint: the
replicas this script starts enable it); a short warm-up runs first, so the
first mode does not pay the cold start.

Printed per mode and workload: prefix-cache hit rate (cached / queried prompt
tokens, summed over both replicas' /metrics), prefill tokens (queried minus
cached: the prompt tokens the replicas computed), how the work split
across replicas (vLLM counts each of a request's n samples), throughput (requests/s and generated tokens/s) and latency
(p50/p95 end to end, p50 time to first token). Ponder runs in this process
(the real app over `RemoteEngine`); without `--urls` two ponder-tiny replicas
are started on loopback, one CPU core each, and stopped at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import httpx

from benchmarks._replicas import ChatResult, chat, finished_requests, ponder_over, reset_prefix_cache, scrape
from ponder.engine.remote import RemoteConfig
from ponder.engine.routing import RoutingConfig

Session = list[dict[str, Any]]  # request bodies sent one after another


def document(rng: random.Random, tokens: int) -> str:
    """A long context of arithmetic facts (ponder-tiny's tokenizer is byte-level: one token per character)."""
    facts: list[str] = []
    while sum(len(f) + 1 for f in facts) < tokens:
        a, b = rng.randrange(10, 99), rng.randrange(10, 99)
        facts.append(f"{a}+{b}={a + b}.")
    return " ".join(facts)[:tokens]


def sessions(workload: str, args: argparse.Namespace) -> list[Session]:
    rng = random.Random(f"{args.seed}-{workload}")  # each workload its own contexts
    out = []
    for s in range(args.sessions):
        doc = document(rng, args.doc_tokens)
        session = []
        for q in range(args.questions):
            a, b, c = (rng.randrange(10, 99) for _ in range(3))
            if workload == "mcts":
                strategy = {
                    "name": "mcts",
                    "iterations": args.iterations,
                    "expand_k": 2,
                    "max_depth": 6,
                    "step_max_tokens": 32,
                    "value": "rollout",
                }
            else:
                strategy = {"name": "best_of_n", "n": args.n, "scorer": args.scorer}
            session.append(
                {
                    "model": args.name,
                    "seed": 1000 * s + q,
                    "max_tokens": args.max_tokens,
                    "messages": [{"role": "system", "content": doc}, {"role": "user", "content": f"{a}+{b}+{c}"}],
                    "strategy": strategy,
                }
            )
        out.append(session)
    return out


def pct(values: Sequence[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def run_workload(
    url: str, label: str, work: list[Session], concurrency: int, think: float = 0.0
) -> tuple[list[ChatResult], float]:
    """Sessions `concurrency` at a time; inside one, each request waits for the previous answer and
    a uniform(0, 2*think) s pause (a user reading it), so other sessions' requests come in between."""
    gate = asyncio.Semaphore(concurrency)
    results: list[ChatResult] = []
    done = 0
    t0 = time.monotonic()

    async def one(session: Session) -> None:
        nonlocal done
        pause = random.Random(session[0]["seed"])
        async with gate:
            for i, body in enumerate(session):
                if i and think:
                    await asyncio.sleep(pause.uniform(0, 2 * think))
                results.append(await chat(client, body))
            done += 1
            print(
                f"  [{label}] {done}/{len(work)} sessions, {len(results)} requests, {time.monotonic() - t0:.1f} s",
                flush=True,
            )

    async with httpx.AsyncClient(base_url=url, timeout=600) as client:
        await asyncio.gather(*(one(s) for s in work))
    return results, time.monotonic() - t0


def measure(
    results: list[ChatResult],
    wall: float,
    before: list[dict[str, float]],
    after: list[dict[str, float]],
    routing: dict[str, int],
) -> dict[str, Any]:
    def delta(name: str, i: int) -> float:
        return after[i].get(name, 0.0) - before[i].get(name, 0.0)

    n = len(before)
    hits = sum(delta("vllm:prefix_cache_hits_total", i) for i in range(n))
    queries = sum(delta("vllm:prefix_cache_queries_total", i) for i in range(n))
    ok = [r for r in results if r.ok]
    tokens = sum(int(r.usage.get("completion_tokens", 0)) for r in ok)
    return {
        "requests": len(results),
        "errors": len(results) - len(ok),
        "engine_requests_per_replica": [
            int(finished_requests(after[i]) - finished_requests(before[i])) for i in range(n)
        ],
        "prefix_hit_rate": hits / queries if queries else 0.0,
        "prefix_hits": hits,
        "prefix_queries": queries,
        "prefill_tokens": queries - hits,  # prompt tokens the replicas had to compute
        "wall_s": wall,
        "requests_per_s": len(ok) / wall,
        "generated_tokens_per_s": tokens / wall,
        "latency_p50_s": pct([r.latency for r in ok], 0.5),
        "latency_p95_s": pct([r.latency for r in ok], 0.95),
        "ttft_p50_s": pct([r.ttft for r in ok if r.ttft is not None], 0.5),
        "routing": routing,
    }


async def warm_up(args: argparse.Namespace, urls: Sequence[str]) -> None:
    """A few requests of each workload first, so neither mode pays the cold start (scorers, first batches)."""
    config = RemoteConfig(urls=tuple(urls), name=args.name, folder=args.folder)
    small = argparse.Namespace(**{**vars(args), "sessions": 2, "questions": 1, "seed": args.seed + 1})
    async with ponder_over(config) as ponder:
        for workload in args.workloads.split(","):
            await run_workload(ponder.url, f"warm-up / {workload}", sessions(workload, small), 2)


async def run(args: argparse.Namespace, urls: Sequence[str]) -> list[dict[str, Any]]:
    rows = []
    await warm_up(args, urls)
    for mode in args.modes.split(","):
        if not all(reset_prefix_cache(u) for u in urls):
            print("  (could not reset every replica's prefix cache: start them with VLLM_SERVER_DEV_MODE=1)")
        config = RemoteConfig(
            urls=tuple(urls),
            name=args.name,
            folder=args.folder,
            routing=RoutingConfig(affinity=mode == "on", slack=args.slack),
        )
        async with ponder_over(config) as ponder:
            for workload in args.workloads.split(","):
                label = f"affinity {mode} / {workload}"
                before = [scrape(u) for u in urls]
                decided = dict(ponder.engine.router.decisions)
                results, wall = await run_workload(
                    ponder.url, label, sessions(workload, args), args.concurrency, args.think_time
                )
                await asyncio.sleep(0.5)  # let the replicas' counters settle
                after = [scrape(u) for u in urls]
                routing = {k: v - decided.get(k, 0) for k, v in ponder.engine.router.decisions.items()}
                row = {"affinity": mode, "workload": workload, **measure(results, wall, before, after, routing)}
                rows.append(row)
                print(
                    f"  [{label}] hit rate {row['prefix_hit_rate']:.1%}, {row['requests_per_s']:.2f} req/s, "
                    f"p50 {row['latency_p50_s']:.2f} s",
                    flush=True,
                )
    return rows


def table(rows: list[dict[str, Any]]) -> str:
    head = (
        "workload",
        "affinity",
        "hit rate",
        "prefill tokens",
        "vLLM seqs A/B",
        "req/s",
        "gen tok/s",
        "p50 s",
        "p95 s",
        "TTFT p50 s",
        "errors",
    )
    lines = [" | ".join(head), " | ".join("---" for _ in head)]
    for r in sorted(rows, key=lambda r: (r["workload"], r["affinity"] != "on")):
        split = "/".join(str(x) for x in r["engine_requests_per_replica"])
        lines.append(
            " | ".join(
                [
                    r["workload"],
                    r["affinity"],
                    f"{r['prefix_hit_rate']:.1%}",
                    f"{r['prefill_tokens']:.0f}",
                    split,
                    f"{r['requests_per_s']:.2f}",
                    f"{r['generated_tokens_per_s']:.0f}",
                    f"{r['latency_p50_s']:.2f}",
                    f"{r['latency_p95_s']:.2f}",
                    f"{r['ttft_p50_s']:.2f}",
                    str(r["errors"]),
                ]
            )
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--urls", nargs="+", help="running vLLM OpenAI servers (default: start two ponder-tiny replicas)")
    p.add_argument("--name", default="ponder-tiny", help="served model name")
    p.add_argument("--folder", help="model folder (default: the bundled ponder-tiny)")
    p.add_argument("--modes", default="on,off", help="affinity modes in the order run")
    p.add_argument("--workloads", default="best_of_n,mcts")
    p.add_argument("--sessions", type=int, default=8)
    p.add_argument("--questions", type=int, default=3, help="requests per session (one shared context)")
    p.add_argument("--concurrency", type=int, default=4, help="sessions at a time")
    p.add_argument("--think-time", type=float, default=0.5, help="mean pause between a session's requests, s")
    p.add_argument("--doc-tokens", type=int, default=1024, help="shared context length")
    p.add_argument("--n", type=int, default=4, help="best_of_n samples")
    p.add_argument("--scorer", default="confidence")
    p.add_argument("--iterations", type=int, default=6, help="mcts iterations")
    p.add_argument("--max-tokens", type=int, default=96)
    p.add_argument("--slack", type=int, default=RoutingConfig().slack, help="affinity yields at this load gap")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="artifacts/affinity.json")
    args = p.parse_args(argv)
    from ponder.models.catalog import TINY_FOLDER

    args.folder = args.folder or str(TINY_FOLDER)
    os.makedirs(os.path.dirname(args.out) or ".", exist_ok=True)
    servers = []
    if args.urls:
        urls = args.urls
    else:
        from benchmarks._replicas import start_replicas

        log_dir = Path(tempfile.mkdtemp(prefix="affinity-"))
        print(f"starting two vLLM replicas of {args.name} (logs: {log_dir}) ...", flush=True)
        servers = start_replicas(2, args.folder, args.name, log_dir, dev_mode=True, progress=True)
        urls = [s.url for s in servers]
    try:
        rows = asyncio.run(run(args, urls))
    finally:
        for s in servers:
            s.stop()
    print(
        f"\n{args.sessions} sessions x {args.questions} requests, shared context {args.doc_tokens} tokens, "
        f"{len(urls)} replicas, concurrency {args.concurrency}"
    )
    print(table(rows))
    with open(args.out, "w") as f:
        json.dump({"args": {k: v for k, v in vars(args).items()}, "urls": list(urls), "rows": rows}, f, indent=2)
    print(f"\nwrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
