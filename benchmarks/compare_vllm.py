"""Ponder side by side with vLLM's own OpenAI server, in one run, on this machine.

    python -m benchmarks.compare_vllm                      # ponder-tiny and smollm2, ~15 min on 2 cores
    python -m benchmarks.compare_vllm --quick              # ~3 min
    python -m benchmarks.compare_vllm --models smollm2 --concurrency 1,4,16 --out r.json --plot r.png

For each model: start vLLM's server (`python -m vllm.entrypoints.openai.api_server`)
and Ponder on the same model folder with the same engine settings (see
`_servers.py`), each a subprocess on a free loopback port; then

1. direct load, the same prompts to both servers at each concurrency level,
   one server at a time, alternating which goes first; prints both, and the
   Ponder / vLLM ratios of throughput, TTFT p50/p99 and ITL p50/p99;
2. multi-sample cost: N samples of one long prompt (1k+ tokens) as Ponder
   `majority_vote` n=N in one request, N concurrent requests to Ponder and to
   vLLM (what an HTTP proxy does), N sequential requests and vLLM n=N (see
   `_multisample.py`): wall time, tokens, cached tokens, prefix-cache hits.

Both servers are stopped (process groups killed) before the next model and on
any exit, Ctrl-C included. Goals are printed PASS/MISS; the exit status is 0
when every request succeeded (goals do not change it).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as `python benchmarks/compare_vllm.py`
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks._compare_report import Goal, direct_goals, direct_table, multisample_goals, plot_compare, ratios
from benchmarks._cpu import CpuMeter
from benchmarks._direct import direct_runs
from benchmarks._load_client import LoadConfig
from benchmarks._load_prompts import Calibration
from benchmarks._load_report import save_json
from benchmarks._multisample import format_multisample, run_multisample
from benchmarks._plan import Plan, add_arguments, plan_for
from benchmarks._servers import EngineSettings, Server, ServerPool


def say(text: str) -> None:
    print(text, flush=True)


def engine_settings(spec: str, plan: Plan, prefix_caching: bool = True) -> EngineSettings:
    """The folder, name and dtype Ponder resolves `spec` to; vLLM gets the very same."""
    from ponder.models.catalog import resolve

    source = resolve(spec)
    return EngineSettings(folder=source.folder, name=source.name, dtype=source.dtype,
                          max_model_len=plan.max_model_len, kv_cache_gib=plan.kv_cache_gib, ponder_model=spec,
                          prefix_caching=prefix_caching)


async def bench_model(servers: dict[str, Server], settings: EngineSettings, plan: Plan,
                      progress: bool) -> dict[str, Any]:
    base = LoadConfig("http://127.0.0.1", settings.name, max_tokens=plan.max_tokens, ignore_eos=True,
                      temperature=plan.temperature, request_timeout=600.0)
    say(f"\n== {settings.name}: direct load, Ponder vs vLLM ==")
    meter = CpuMeter(s.proc.pid for s in servers.values())  # each server leads its own process group
    data = await direct_runs(servers, base, plan, meter, say, progress)
    say(direct_table(data["vllm"], data["ponder"]))
    data["ratios"] = [ratios(p, v) for v, p in zip(data["vllm"], data["ponder"], strict=True)]
    say(f"\n== {settings.name}: {plan.samples} samples of one {plan.ms_input_len}-token prompt, "
        f"{plan.ms_max_tokens} tokens each, {plan.ms_rounds} round(s) ==")
    ms = await run_multisample(servers, base, Calibration(**data["calibration"]), samples=plan.samples,
                               input_len=plan.ms_input_len, max_tokens=plan.ms_max_tokens, rounds=plan.ms_rounds,
                               meter=meter, settle=plan.settle, progress=progress)
    say(format_multisample(ms))
    data["multisample"] = ms
    data["goals"] = direct_goals(settings.name, data["vllm"], data["ponder"])
    data["goals"] += multisample_goals(settings.name, plan.samples, ms)
    return data


def run(specs: list[str], args: argparse.Namespace, log_dir: Path, progress: bool) -> dict[str, dict[str, Any]]:
    results: dict[str, dict[str, Any]] = {}
    with ServerPool(log_dir, say) as pool:
        for spec in specs:
            plan = plan_for(spec, args)
            settings = engine_settings(spec, plan, prefix_caching=not args.no_prefix_caching)
            servers = {kind: pool.start(kind, settings) for kind in ("vllm", "ponder")}  # start both at once
            for server in servers.values():
                pool.wait_ready(server)
            data = asyncio.run(bench_model(servers, settings, plan, progress))
            data["startup_s"] = {k: s.ready_s for k, s in servers.items()}
            data["settings"] = asdict(settings)
            data["plan"] = asdict(plan)
            results[settings.name] = data
            pool.stop(*servers.values())
    return results


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="compare_vllm", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", default="ponder-tiny,smollm2", help="comma-separated: ponder-tiny, smollm2, folders")
    p.add_argument("--quick", action="store_true", help="a short run: fewer levels, requests and tokens")
    add_arguments(p)
    p.add_argument("--out", default="benchmarks/results/compare_vllm.json", help="JSON results")
    p.add_argument("--plot", default="benchmarks/results/compare_vllm.png", help="PNG figure")
    p.add_argument("--log-dir", default="artifacts/compare_vllm-logs", help="server logs")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--no-prefix-caching", action="store_true",
                   help="both servers without vLLM's prefix caching (a cold or evicted cache): what n=N alone saves")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    specs = [m.strip() for m in args.models.split(",") if m.strip()]
    try:
        for spec in specs:
            plan_for(spec, args)
    except ValueError as e:
        parser().error(str(e))
    start = time.monotonic()
    try:
        results = run(specs, args, Path(args.log_dir), progress=not args.no_progress)
    except KeyboardInterrupt:
        say("interrupted; servers stopped")
        return 130
    except (RuntimeError, FileNotFoundError) as e:
        say(f"error: {e}")
        return 2
    goals: list[Goal] = [g for data in results.values() for g in data["goals"]]
    say("\n== goals ==")
    for g in goals:
        say(g.line())
    say(f"\ntotal time {time.monotonic() - start:.0f} s")
    command = " ".join(["python -m benchmarks.compare_vllm", *(sys.argv[1:] if argv is None else argv)])
    models = {m: {**d, "multisample": [w.to_dict() for w in d["multisample"]], "goals": [asdict(g) for g in d["goals"]]}
              for m, d in results.items()}
    save_json(args.out, {"command": command, "models": models})
    plot_compare(args.plot, results)
    say(f"saved {args.out} and {args.plot}")
    failed = sum(s.failed for d in results.values() for k in ("vllm", "ponder") for s in d[k])
    failed += sum(w.requests_failed for d in results.values() for w in d["multisample"])
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
