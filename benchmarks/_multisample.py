"""The cost of N samples of one prompt, done several ways on Ponder and on vLLM's server.

Ways (each round uses a fresh prompt per way, so no way profits from another's cache):

- `ponder majority_vote n=N`: one Ponder request; the strategy sends all N
  samples to the engine as one request with n=N (the prompt's KV computed once).
- `ponder N concurrent`: N separate `direct` requests to Ponder at once (same server).
- `vllm N concurrent`: N separate requests to vLLM's server at once, what an
  HTTP proxy such as optillm does.
- `vllm N sequential`: the same N requests one after another.
- `vllm n=N`: one vLLM request with `n=N` (the engine-level baseline).

Each way reports wall time, output and prompt tokens, cached prompt tokens as
the server's usage reports them, and the prefix-cache hits/queries its
`/metrics` counters moved by (when the server exports vLLM's counters).
"""

from __future__ import annotations

from collections.abc import Awaitable
from dataclasses import dataclass, field, replace
from typing import Any, TypeVar

from benchmarks._cpu import CpuMeter
from benchmarks._load_client import LoadConfig
from benchmarks._load_prompts import Calibration, Prompt, synthetic_prompts
from benchmarks._load_run import Bounds, Level
from benchmarks._load_stats import RunSummary
from benchmarks._servers import Server, prefix_cache
from benchmarks.load import run_load

T = TypeVar("T")
SUFFIX = "\n\nIgnore the words above. What is 37 + 45 + 18? Think step by step."


@dataclass(frozen=True)
class Way:
    key: str
    server: str  # vllm | ponder
    concurrency: int  # requests in flight
    requests: int  # requests per round
    strategy: dict[str, Any] | None = None
    n: int = 1  # choices per request

    def title(self, samples: int) -> str:
        return {
            "ponder_majority_vote": f"ponder majority_vote n={samples} (1 request)",
            "ponder_concurrent": f"ponder {samples} concurrent requests",
            "vllm_concurrent": f"vllm {samples} concurrent requests (proxy)",
            "vllm_sequential": f"vllm {samples} sequential requests",
            "vllm_n": f"vllm n={samples} (1 request)",
        }[self.key]


def ways(samples: int) -> list[Way]:
    return [
        Way("ponder_majority_vote", "ponder", 1, 1, strategy={"name": "majority_vote", "n": samples}),
        Way("vllm_concurrent", "vllm", samples, samples),
        Way("ponder_concurrent", "ponder", samples, samples),
        Way("vllm_sequential", "vllm", 1, samples),
        Way("vllm_n", "vllm", 1, 1, n=samples),
    ]


@dataclass
class WayResult:
    way: str
    title: str
    wall_s: float = 0.0
    output_tokens: int = 0
    prompt_tokens: int = 0
    cached_tokens: int = 0  # from usage.prompt_tokens_details
    prefix_hits: float | None = None  # tokens, from /metrics
    prefix_queries: float | None = None
    requests_ok: int = 0
    requests_failed: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    foreign_cores: float | None = None  # most CPU other jobs used during a round (see _cpu.py)

    @property
    def throughput(self) -> float:
        return self.output_tokens / self.wall_s if self.wall_s > 0 else 0.0

    def add(self, s: RunSummary) -> None:
        self.wall_s += s.duration_s
        self.output_tokens += s.output_tokens
        self.prompt_tokens += s.prompt_tokens
        self.cached_tokens += s.cached_tokens
        self.requests_ok += s.ok
        self.requests_failed += s.failed
        for reason, count in s.errors.items():
            self.errors[reason] = self.errors.get(reason, 0) + count

    def to_dict(self) -> dict[str, Any]:
        return {**self.__dict__, "throughput": self.throughput}


async def run_multisample(
    servers: dict[str, Server],
    base: LoadConfig,
    calibration: Calibration,
    *,
    samples: int,
    input_len: int,
    max_tokens: int,
    rounds: int,
    seed: int = 1000,
    meter: CpuMeter | None = None,
    settle: float = 0.0,
    progress: bool = True,
) -> list[WayResult]:
    """Every way, `rounds` times, alternating servers; returns one total per way."""
    plan = ways(samples)
    results = {w.key: WayResult(w.key, w.title(samples)) for w in plan}
    prompts = synthetic_prompts(rounds * len(plan), input_len, calibration, seed=seed, suffix=SUFFIX)
    for r in range(rounds):
        for i, way in enumerate(plan):
            server = servers[way.server]
            prompt: Prompt = prompts[r * len(plan) + i]
            cfg = replace(base, base_url=server.url, max_tokens=max_tokens, strategy=way.strategy,
                          extra_body={**base.extra_body, **({"n": way.n} if way.n > 1 else {})})
            work = run_load(cfg, [Level(concurrency=way.concurrency)], Bounds(way.requests, 3600.0), [prompt],
                            label=f"{way.key} r{r + 1}", progress=progress)
            before = await prefix_cache(server.url)
            [summary], foreign = await (meter.measure(work, settle=settle) if meter else _unmeasured(work))
            after = await prefix_cache(server.url)
            res = results[way.key]
            res.add(summary)
            if foreign is not None:
                res.foreign_cores = max(res.foreign_cores or 0.0, foreign)
            if before is not None and after is not None:
                res.prefix_hits = (res.prefix_hits or 0.0) + after[0] - before[0]
                res.prefix_queries = (res.prefix_queries or 0.0) + after[1] - before[1]
    return [results[w.key] for w in plan]


async def _unmeasured(work: Awaitable[T]) -> tuple[T, None]:
    return await work, None


def _cores(x: float | None) -> str:
    return "-" if x is None else f"{x:.2f}"


def _num(x: float | None) -> str:
    return "-" if x is None else f"{x:.0f}"


def format_multisample(results: list[WayResult]) -> str:
    head = (f"{'way':<40} {'wall s':>7} {'out tok':>8} {'tok/s':>7} {'prompt tok':>10} {'cached':>7} "
            f"{'pfx hits':>9} {'pfx queries':>11} {'fail':>4} {'other CPU':>9}")
    lines = [head, "-" * len(head)]
    for w in results:
        lines.append(f"{w.title:<40} {w.wall_s:>7.2f} {w.output_tokens:>8} {w.throughput:>7.1f} {w.prompt_tokens:>10} "
                     f"{w.cached_tokens:>7} {_num(w.prefix_hits):>9} {_num(w.prefix_queries):>11} "
                     f"{w.requests_failed:>4} {_cores(w.foreign_cores):>9}")
        for reason, count in w.errors.items():
            lines.append(f"  {count} failed: {reason}")
    return "\n".join(lines)
