"""The direct part of `compare_vllm.py`: the same load on vLLM's server and on Ponder, alternating.

Prompts are sized once on vLLM's server (the same tokenizer serves both) and
each (repeat, level) gets its own prompts, sent to both servers; the server
that goes first alternates from one run to the next, so a drift of the
machine (another job starting, caches warming) falls on both. Every run
first waits (bounded) for other jobs to go quiet and records how much CPU they
used anyway, and how much CPU the server's HTTP process used. Repeats of a
level are combined into medians (`median_summary`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, replace
from typing import Any

from benchmarks._cpu import CpuMeter, process_cpu
from benchmarks._load_client import LoadConfig, calibrate, make_client
from benchmarks._load_prompts import synthetic_prompts, warmup_prompts
from benchmarks._load_run import Bounds, Level
from benchmarks._load_stats import RunSummary, median_summary
from benchmarks._plan import Plan
from benchmarks._servers import Server
from benchmarks.load import run_load

KINDS = ("vllm", "ponder")


async def one_run(server: Server, cfg: LoadConfig, c: int, prompts: list[Any], plan: Plan, meter: CpuMeter,
                  label: str, progress: bool) -> RunSummary:
    work = run_load(cfg, [Level(concurrency=c)], Bounds(len(prompts), plan.duration), prompts, label=label,
                    progress=progress)
    api_before = process_cpu(server.proc.pid)  # the HTTP front end; the engine runs in its children
    [s], foreign = await meter.measure(work, settle=plan.settle)
    api_after = process_cpu(server.proc.pid)
    s.extra["foreign_cores"] = foreign
    if api_before is not None and api_after is not None:
        s.extra["api_cpu_s"] = api_after - api_before
    return s


async def direct_runs(servers: dict[str, Server], base: LoadConfig, plan: Plan, meter: CpuMeter,
                      say: Callable[[str], None], progress: bool) -> dict[str, Any]:
    vllm_cfg = replace(base, base_url=servers["vllm"].url)
    async with make_client(vllm_cfg, 2) as client:
        calibration = await calibrate(client, vllm_cfg)
    if not calibration.measured:
        raise RuntimeError("vLLM's server did not report prompt_tokens for the calibration probes")
    say(f"prompts: {plan.input_len} tokens ({calibration.per_word:.2f} tokens/word, base {calibration.base:.0f}), "
        f"{plan.max_tokens} output tokens, ignore_eos, {plan.repeats} repeat(s) per level")
    per_repeat = sum(plan.requests(c) for c in plan.concurrency)
    prompts = synthetic_prompts(per_repeat * plan.repeats, plan.input_len, calibration, seed=0)
    warm = warmup_prompts(max(plan.concurrency))
    for kind in KINDS:  # unmeasured: first-request costs, connections
        await run_load(replace(base, base_url=servers[kind].url), [Level(concurrency=len(warm))],
                       Bounds(len(warm), plan.duration), warm, label=f"warm-up {kind}", progress=progress)
    runs: dict[str, list[list[RunSummary]]] = {k: [[] for _ in plan.concurrency] for k in KINDS}
    offset, turn = 0, 0
    for rep in range(plan.repeats):
        for i, c in enumerate(plan.concurrency):
            n = plan.requests(c)
            mine, offset = prompts[offset:offset + n], offset + n
            order = KINDS if turn % 2 == 0 else KINDS[::-1]
            turn += 1
            for kind in order:
                cfg = replace(base, base_url=servers[kind].url)
                s = await one_run(servers[kind], cfg, c, mine, plan, meter, kind, progress)
                runs[kind][i].append(s)
                say(f"  r{rep + 1} {kind:<6} c={c:<3} {s.ok}/{s.requests} ok {s.output_throughput:8.1f} tok/s  "
                    f"TTFT p50 {s.ttft_ms['p50']:7.0f} ms  TPOT p50 {s.tpot_ms['p50']:6.1f} ms  "
                    f"other jobs {s.extra.get('foreign_cores') or 0:.2f} cores")
    out: dict[str, Any] = {"calibration": asdict(calibration), "raw": {k: runs[k] for k in KINDS}}
    for kind in KINDS:
        combined = []
        for level_runs in runs[kind]:
            m = median_summary(level_runs)
            readings = [s.extra.get("foreign_cores") for s in level_runs]
            m.extra["foreign_cores"] = max((r for r in readings if r is not None), default=None)
            api = sum(s.extra.get("api_cpu_s") or 0.0 for s in level_runs)
            m.extra["api_cpu_s"] = api
            m.extra["api_ms_per_token"] = 1000.0 * api / m.output_tokens if m.output_tokens else None
            m.label = kind
            combined.append(m)
        out[kind] = combined
    return out
