"""Load tester for any OpenAI-compatible server (Ponder, vLLM, ...): streamed requests, timed.

    python -m benchmarks.load --base-url http://127.0.0.1:8000 --concurrency 1,4,16 \\
        --num-requests 64 --input-len 256 --max-tokens 128 --ignore-eos --out load.json --plot load.png
    python -m benchmarks.load --rate 2 --duration 60 --strategy '{"name": "majority_vote", "n": 8}'

Each level (a concurrency, or a Poisson rate) is one run, bounded by
`--num-requests` and `--duration`; each run reports ok/failed (with reasons),
TTFT, ITL, TPOT and end-to-end latency (mean, p50, p90, p99, ms), output
tokens/s and requests/s. Every level gets its own prompts (no prefix-cache
hits from an earlier level). Output tokens come from the server's usage
(`stream_options.include_usage`, on unless `--no-usage`), otherwise one per
streamed text chunk. TTFT is the time to the first chunk with visible
(non-whitespace) text, reasoning or content; ITL the gaps between text chunks
after it. Exit status 1 when any request failed.

Importable: `run_load(config, levels, bounds, ...)` returns the summaries;
`benchmarks/compare_vllm.py` drives it against two servers.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from collections.abc import Sequence
from dataclasses import asdict
from typing import Any

if __package__ in (None, ""):  # run as `python benchmarks/load.py`
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import httpx

from benchmarks._load_client import LoadConfig, calibrate, fetch_model, make_client
from benchmarks._load_prompts import Calibration, Prompt, load_jsonl, synthetic_prompts, warmup_prompts
from benchmarks._load_report import plot, save_json
from benchmarks._load_run import Bounds, Level, run_level, warm_up
from benchmarks._load_stats import RunSummary, format_table

__all__ = ["Bounds", "LoadConfig", "Level", "Prompt", "RunSummary", "build_prompts", "main", "run_load"]


async def build_prompts(client: httpx.AsyncClient, cfg: LoadConfig, count: int, input_len: int, *, seed: int = 0,
                        calibration: Calibration | None = None, suffix: str = "") -> tuple[list[Prompt], Calibration]:
    """`count` synthetic prompts of about `input_len` tokens, sized with the server's tokenizer."""
    if calibration is None:
        calibration = await calibrate(client, cfg, seed)
        if not calibration.measured:
            print(f"warning: the server reported no prompt_tokens; assuming {calibration.per_word} tokens a word",
                  file=sys.stderr)
    return synthetic_prompts(count, input_len, calibration, seed=seed, suffix=suffix), calibration


async def run_load(
    cfg: LoadConfig,
    levels: Sequence[Level],
    bounds: Bounds,
    prompts: Sequence[Prompt],
    *,
    warmup: Sequence[Prompt] = (),
    label: str = "",
    seed: int = 0,
    progress: bool = True,
    per_level_prompts: int | None = None,
) -> list[RunSummary]:
    """Run every level in turn. Level i uses prompts[i*k:(i+1)*k] (k = `per_level_prompts`,
    default `bounds.num_requests`) when there are that many, else cycles through all."""
    k = per_level_prompts or bounds.num_requests
    connections = max(lv.connections for lv in levels)
    summaries = []
    async with make_client(cfg, max(connections, len(warmup))) as client:
        if warmup:
            await warm_up(client, cfg, warmup)
        for i, level in enumerate(levels):
            mine = prompts[i * k:(i + 1) * k] if len(prompts) >= (i + 1) * k else prompts
            summaries.append(await run_level(client, cfg, mine, level, bounds, label=label, seed=seed + i,
                                             progress=progress))
    return summaries


def _floats(text: str) -> list[float]:
    return [float(x) for x in text.split(",") if x.strip()]


def _strategy(text: str | None) -> str | dict[str, Any] | None:
    if text is None:
        return None
    text = text.strip()
    if text.startswith("{"):
        value = json.loads(text)
        if not isinstance(value, dict):
            raise argparse.ArgumentTypeError("--strategy JSON must be an object")
        return value
    return text


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="ponder bench load", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--base-url", default="http://127.0.0.1:8000", help="server root or its /v1 URL")
    p.add_argument("--model", help="model name (default: the first one GET /v1/models lists)")
    p.add_argument("--endpoint", choices=("chat", "completions"), default="chat")
    p.add_argument("--api-key", default=os.environ.get("OPENAI_API_KEY"), help="bearer key (default $OPENAI_API_KEY)")
    how = p.add_mutually_exclusive_group()
    how.add_argument("--concurrency", help="comma-separated concurrency levels, e.g. 1,4,16 (default 1)")
    how.add_argument("--rate", help="comma-separated Poisson request rates (req/s), e.g. 1,2,4")
    p.add_argument("--max-concurrency", type=int, help="with --rate: at most this many requests in flight")
    p.add_argument("--num-requests", type=int, default=64, help="requests per level (upper bound)")
    p.add_argument("--duration", type=float, default=300.0, help="seconds per level after which no request is sent")
    p.add_argument("--input-len", type=int, default=256, help="synthetic prompt length in tokens")
    p.add_argument("--dataset", help="JSONL prompts ({'prompt': ...} or {'messages': [...]}) instead of synthetic")
    p.add_argument("--max-tokens", type=int, default=128)
    p.add_argument("--ignore-eos", action="store_true", help="generate exactly max_tokens (vLLM extension)")
    p.add_argument("--temperature", type=float, help="sampling temperature (default: the server's)")
    p.add_argument("--strategy", help='Ponder strategy: a name or JSON, e.g. \'{"name": "majority_vote", "n": 8}\'')
    p.add_argument("--extra-body", help="JSON object merged into every request body")
    p.add_argument("--no-usage", action="store_true", help="do not ask for usage; count tokens from the deltas")
    p.add_argument("--warmup", type=int, default=1, help="unmeasured requests before the first level")
    p.add_argument("--request-timeout", type=float, default=300.0, help="seconds before one request counts as failed")
    p.add_argument("--seed", type=int, default=0, help="prompt set and Poisson arrivals")
    p.add_argument("--label", default="", help="name of this run in the table, JSON and plot")
    p.add_argument("--out", help="save the results as JSON here")
    p.add_argument("--plot", help="save a latency-vs-throughput PNG here")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p


def levels_from(args: argparse.Namespace) -> list[Level]:
    if args.rate:
        return [Level(rate=r, max_concurrency=args.max_concurrency) for r in _floats(args.rate)]
    return [Level(concurrency=int(c)) for c in _floats(args.concurrency or "1")]


async def _main(args: argparse.Namespace) -> int:
    model = args.model or await fetch_model(args.base_url, args.api_key)
    extra = json.loads(args.extra_body) if args.extra_body else {}
    cfg = LoadConfig(args.base_url, model, endpoint=args.endpoint, api_key=args.api_key, max_tokens=args.max_tokens,
                     ignore_eos=args.ignore_eos, temperature=args.temperature, strategy=_strategy(args.strategy),
                     include_usage=not args.no_usage, request_timeout=args.request_timeout, extra_body=extra)
    levels = levels_from(args)
    bounds = Bounds(args.num_requests, args.duration)
    if args.dataset:
        prompts = load_jsonl(args.dataset)
    else:
        async with make_client(cfg, 2) as client:
            prompts, _ = await build_prompts(client, cfg, bounds.num_requests * len(levels), args.input_len,
                                             seed=args.seed)
    warm = warmup_prompts(args.warmup)
    label = args.label or model
    summaries = await run_load(cfg, levels, bounds, prompts, warmup=warm, label=label, seed=args.seed,
                               progress=not args.no_progress)
    print(format_table(summaries))
    if args.out:
        config = {k: v for k, v in asdict(cfg).items() if k != "api_key"}
        save_json(args.out, {"config": config, "args": {k: v for k, v in vars(args).items() if k != "api_key"},
                             "runs": summaries})
        print(f"saved {args.out}")
    if args.plot:
        plot(args.plot, {label: summaries}, title=f"{label}: latency vs throughput")
        print(f"saved {args.plot}")
    return 1 if any(s.failed for s in summaries) else 0


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.num_requests < 1 or args.duration <= 0 or args.warmup < 0:
        parser().error("--num-requests must be >= 1, --duration > 0 and --warmup >= 0")
    try:
        return asyncio.run(_main(args))
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except (httpx.HTTPError, ValueError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
