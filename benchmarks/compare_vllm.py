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
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as `python benchmarks/compare_vllm.py`
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks._compare_report import Goal, direct_goals, direct_table, multisample_goals, plot_compare, ratios
from benchmarks._cpu import CpuMeter, process_cpu
from benchmarks._load_client import LoadConfig, calibrate, make_client
from benchmarks._load_prompts import Calibration, synthetic_prompts, warmup_prompts
from benchmarks._load_report import save_json
from benchmarks._load_run import Bounds, Level
from benchmarks._multisample import format_multisample, run_multisample
from benchmarks._servers import EngineSettings, Server, ServerPool
from benchmarks.load import run_load


@dataclass(frozen=True)
class Plan:
    models: tuple[str, ...] = ("ponder-tiny", "smollm2")
    concurrency: tuple[int, ...] = (1, 4, 16)
    requests_per_stream: int = 4  # requests per level = max(min_requests, this * concurrency)
    min_requests: int = 8
    duration: float = 60.0  # s per level and server, a safety bound
    input_len: int = 256
    max_tokens: int = 64
    temperature: float = 1.0
    samples: int = 8
    ms_input_len: int = 1280
    ms_max_tokens: int = 64
    ms_rounds: int = 2
    max_model_len: int = 2048
    kv_cache_gib: float = 1.0
    settle: float = 60.0  # s to wait (at most) for other jobs on the machine to go quiet before each run

    def __post_init__(self) -> None:
        if self.ms_input_len + self.ms_max_tokens + 64 > self.max_model_len:
            raise ValueError("--ms-input-len + --ms-max-tokens must fit in --max-model-len (with 64 to spare)")
        if not self.concurrency or min(self.concurrency) < 1 or self.samples < 2 or self.ms_rounds < 1:
            raise ValueError("concurrency levels must be >= 1, --samples >= 2, --ms-rounds >= 1")

    def requests(self, c: int) -> int:
        return max(self.min_requests, self.requests_per_stream * c)


QUICK = {"concurrency": (1, 8), "requests_per_stream": 2, "min_requests": 4, "duration": 30.0,
         "input_len": 128, "max_tokens": 32, "ms_input_len": 1024, "ms_max_tokens": 32, "ms_rounds": 1}


def say(text: str) -> None:
    print(text, flush=True)


def engine_settings(spec: str, plan: Plan) -> EngineSettings:
    """The folder, name and dtype Ponder resolves `spec` to; vLLM gets the very same."""
    from ponder.models.catalog import resolve

    source = resolve(spec)
    return EngineSettings(folder=source.folder, name=source.name, dtype=source.dtype,
                          max_model_len=plan.max_model_len, kv_cache_gib=plan.kv_cache_gib, ponder_model=spec)


async def direct_runs(servers: dict[str, Server], base: LoadConfig, plan: Plan, meter: CpuMeter,
                      progress: bool) -> dict[str, Any]:
    """Both servers at each level, the same prompts, alternating which goes first."""
    total = sum(plan.requests(c) for c in plan.concurrency)
    async with make_client(replace(base, base_url=servers["vllm"].url), 2) as client:
        calibration = await calibrate(client, replace(base, base_url=servers["vllm"].url))
    if not calibration.measured:
        raise RuntimeError("vLLM's server did not report prompt_tokens for the calibration probes")
    say(f"prompts: {plan.input_len} tokens ({calibration.per_word:.2f} tokens/word, base {calibration.base:.0f}"
        f"), {plan.max_tokens} output tokens, ignore_eos")
    prompts = synthetic_prompts(total, plan.input_len, calibration, seed=0)
    warm = warmup_prompts(max(plan.concurrency))
    for kind in ("vllm", "ponder"):  # unmeasured: first-request costs, connections
        await run_load(replace(base, base_url=servers[kind].url), [Level(concurrency=len(warm))],
                       Bounds(len(warm), plan.duration), warm, label=f"warm-up {kind}", progress=progress)
    runs: dict[str, list[Any]] = {"vllm": [], "ponder": []}
    offset = 0
    for i, c in enumerate(plan.concurrency):
        n = plan.requests(c)
        mine = prompts[offset:offset + n]
        offset += n
        order = ("vllm", "ponder") if i % 2 == 0 else ("ponder", "vllm")
        for kind in order:
            cfg = replace(base, base_url=servers[kind].url)
            work = run_load(cfg, [Level(concurrency=c)], Bounds(n, plan.duration), mine, label=kind,
                            progress=progress)
            api_pid = servers[kind].proc.pid  # the HTTP front end (the engine runs in its children)
            api_before = process_cpu(api_pid)
            [s], foreign = await meter.measure(work, settle=plan.settle)
            api_after = process_cpu(api_pid)
            s.extra["foreign_cores"] = foreign
            if api_before is not None and api_after is not None:
                s.extra["api_cpu_s"] = api_after - api_before
            runs[kind].append(s)
            say(f"  {kind:<6} c={c:<3} {s.ok}/{s.requests} ok  {s.output_throughput:8.1f} tok/s  "
                f"TTFT p50 {s.ttft_ms['p50']:.0f} ms  ITL p50 {s.itl_ms['p50']:.1f} ms  "
                f"other jobs {foreign or 0:.2f} cores")
    return {"calibration": asdict(calibration), **runs}


async def bench_model(servers: dict[str, Server], settings: EngineSettings, plan: Plan,
                      progress: bool) -> dict[str, Any]:
    base = LoadConfig("http://127.0.0.1", settings.name, max_tokens=plan.max_tokens, ignore_eos=True,
                      temperature=plan.temperature, request_timeout=600.0)
    say(f"\n== {settings.name}: direct load, Ponder vs vLLM ==")
    meter = CpuMeter(s.proc.pid for s in servers.values())  # each server leads its own process group
    data = await direct_runs(servers, base, plan, meter, progress)
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


def run(plan: Plan, log_dir: Path, progress: bool) -> dict[str, dict[str, Any]]:
    results: dict[str, dict[str, Any]] = {}
    with ServerPool(log_dir, say) as pool:
        for spec in plan.models:
            settings = engine_settings(spec, plan)
            servers = {kind: pool.start(kind, settings) for kind in ("vllm", "ponder")}  # start both at once
            for server in servers.values():
                pool.wait_ready(server)
            data = asyncio.run(bench_model(servers, settings, plan, progress))
            data["startup_s"] = {k: s.ready_s for k, s in servers.items()}
            data["settings"] = asdict(settings)
            results[settings.name] = data
            pool.stop(*servers.values())
    return results


def parser() -> argparse.ArgumentParser:
    d = Plan()
    p = argparse.ArgumentParser(prog="compare_vllm", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", default=",".join(d.models), help="comma-separated: ponder-tiny, smollm2, or folders")
    p.add_argument("--quick", action="store_true", help="a ~3-minute run: fewer levels, requests and tokens")
    p.add_argument("--concurrency", help=f"levels (default {','.join(map(str, d.concurrency))})")
    p.add_argument("--requests-per-stream", type=int, help="requests per level = this x concurrency (at least 8)")
    p.add_argument("--duration", type=float, help="seconds per level and server (a safety bound)")
    p.add_argument("--input-len", type=int, help=f"direct prompt tokens (default {d.input_len})")
    p.add_argument("--max-tokens", type=int, help=f"direct output tokens, ignore_eos (default {d.max_tokens})")
    p.add_argument("--samples", type=int, help=f"N for the multi-sample part (default {d.samples})")
    p.add_argument("--ms-input-len", type=int, help=f"multi-sample prompt tokens (default {d.ms_input_len})")
    p.add_argument("--ms-max-tokens", type=int, help=f"multi-sample output tokens each (default {d.ms_max_tokens})")
    p.add_argument("--ms-rounds", type=int, help=f"multi-sample rounds (default {d.ms_rounds})")
    p.add_argument("--max-model-len", type=int, help=f"both servers (default {d.max_model_len})")
    p.add_argument("--kv-cache-gib", type=float, help=f"both servers (default {d.kv_cache_gib})")
    p.add_argument("--settle", type=float, help=f"max s to wait for other jobs to go quiet before each run "
                   f"(default {d.settle:g}; 0: do not wait)")
    p.add_argument("--out", default="benchmarks/results/compare_vllm.json", help="JSON results")
    p.add_argument("--plot", default="benchmarks/results/compare_vllm.png", help="PNG figure")
    p.add_argument("--log-dir", default="artifacts/compare_vllm-logs", help="server logs")
    p.add_argument("--no-progress", action="store_true")
    return p


def plan_from(args: argparse.Namespace) -> Plan:
    values: dict[str, Any] = dict(QUICK) if args.quick else {}
    values["models"] = tuple(m.strip() for m in args.models.split(",") if m.strip())
    if args.concurrency:
        values["concurrency"] = tuple(int(c) for c in args.concurrency.split(",") if c.strip())
    for name in ("requests_per_stream", "duration", "input_len", "max_tokens", "samples", "ms_input_len",
                 "ms_max_tokens", "ms_rounds", "max_model_len", "kv_cache_gib", "settle"):
        if getattr(args, name) is not None:
            values[name] = getattr(args, name)
    return Plan(**values)


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        plan = plan_from(args)
    except ValueError as e:
        parser().error(str(e))
    start = time.monotonic()
    try:
        results = run(plan, Path(args.log_dir), progress=not args.no_progress)
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
    save_json(args.out, {"plan": asdict(plan), "command": command, "models": models})
    plot_compare(args.plot, results)
    say(f"saved {args.out} and {args.plot}")
    failed = sum(s.failed for d in results.values() for k in ("vllm", "ponder") for s in d[k])
    failed += sum(w.requests_failed for d in results.values() for w in d["multisample"])
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
