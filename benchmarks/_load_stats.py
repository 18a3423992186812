"""Per-request results of a load run and the statistics over them.

`RequestResult` is what one streamed request measured; `summarize` turns a
run's results into a `RunSummary` (counts, failure reasons, throughput, and
mean/p50/p90/p99 of TTFT, ITL, TPOT and end-to-end latency, in milliseconds).
Definitions follow vLLM's `benchmark_serving`:

- TTFT: request sent -> first chunk that carries generated text (a role-only
  opening chunk or a strategy's progress event is not a token).
- ITL: gaps between successive text-bearing chunks, pooled over all requests.
- TPOT: (last token - first token) / (output tokens - 1), per request.
- E2E: request sent -> end of the stream (`[DONE]`).
- Throughput: output tokens (and ok requests) divided by the run's wall time,
  first request sent -> last request finished.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

PERCENTILES = (50, 90, 99)


@dataclass
class RequestResult:
    ok: bool = False
    error: str | None = None
    start: float = 0.0  # seconds since the run started
    ttft: float | None = None  # s
    itl: list[float] = field(default_factory=list)  # s, one per text chunk after the first
    last_token: float | None = None  # s after the request was sent
    latency: float = 0.0  # s, end to end
    token_chunks: int = 0  # text-bearing chunks (all choices)
    usage_tokens: int | None = None  # completion_tokens from the server's usage
    prompt_tokens: int | None = None
    cached_tokens: int | None = None
    side_events: int = 0  # named SSE events skipped (ponder.progress / ponder.result)

    @property
    def output_tokens(self) -> int:
        """The server's count when it sent usage, otherwise one token per text chunk."""
        return self.usage_tokens if self.usage_tokens is not None else self.token_chunks

    @property
    def tpot(self) -> float | None:
        if self.ttft is None or self.last_token is None or self.output_tokens < 2:
            return None
        return (self.last_token - self.ttft) / (self.output_tokens - 1)


def percentile(values: Sequence[float], p: float) -> float:
    """Linear-interpolated percentile (numpy's default method); nan for no values."""
    if not values:
        return math.nan
    if not 0 <= p <= 100:
        raise ValueError("p must be in [0, 100]")
    xs = sorted(values)
    pos = (len(xs) - 1) * p / 100.0
    lo = math.floor(pos)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


def distribution(values_s: Sequence[float]) -> dict[str, float]:
    """mean and percentiles of `values_s` (seconds), reported in milliseconds."""
    out = {"mean": 1000.0 * sum(values_s) / len(values_s) if values_s else math.nan}
    for p in PERCENTILES:
        out[f"p{p}"] = 1000.0 * percentile(values_s, p)
    return out


@dataclass
class RunSummary:
    label: str
    concurrency: int | None
    rate: float | None
    requests: int
    ok: int
    failed: int
    errors: dict[str, int]
    duration_s: float
    output_tokens: int
    prompt_tokens: int
    cached_tokens: int
    tokens_from_usage: int  # ok requests whose output tokens came from the server's usage
    output_throughput: float  # output tokens / s
    request_throughput: float  # ok requests / s
    ttft_ms: dict[str, float]
    itl_ms: dict[str, float]
    tpot_ms: dict[str, float]
    e2e_ms: dict[str, float]
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def level(self) -> str:
        if self.rate is not None:
            return f"rate {self.rate:g}/s"
        return f"c={self.concurrency}"

    def to_dict(self) -> dict[str, Any]:
        return {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RunSummary:
        return cls(**d)


def summarize(
    results: Iterable[RequestResult],
    duration_s: float,
    *,
    label: str = "",
    concurrency: int | None = None,
    rate: float | None = None,
) -> RunSummary:
    results = list(results)
    good = [r for r in results if r.ok]
    errors = Counter(r.error or "unknown error" for r in results if not r.ok)
    out_tokens = sum(r.output_tokens for r in good)
    wall = max(duration_s, 1e-9)
    return RunSummary(
        label=label,
        concurrency=concurrency,
        rate=rate,
        requests=len(results),
        ok=len(good),
        failed=len(results) - len(good),
        errors=dict(errors.most_common()),
        duration_s=duration_s,
        output_tokens=out_tokens,
        prompt_tokens=sum(r.prompt_tokens or 0 for r in good),
        cached_tokens=sum(r.cached_tokens or 0 for r in good),
        tokens_from_usage=sum(1 for r in good if r.usage_tokens is not None),
        output_throughput=out_tokens / wall if good else 0.0,
        request_throughput=len(good) / wall if good else 0.0,
        ttft_ms=distribution([r.ttft for r in good if r.ttft is not None]),
        itl_ms=distribution([x for r in good for x in r.itl]),
        tpot_ms=distribution([t for r in good if (t := r.tpot) is not None]),
        e2e_ms=distribution([r.latency for r in good]),
    )


def fmt_ms(x: float | None) -> str:
    return "-" if x is None or math.isnan(x) else f"{x:.1f}"


TABLE_HEADER = (
    f"{'run':<22} {'level':>10} {'ok':>5} {'fail':>5} {'tok/s':>8} {'req/s':>6} "
    f"{'TTFT p50':>9} {'p90':>8} {'p99':>8} {'ITL p50':>8} {'p99':>7} {'TPOT p50':>9} {'E2E p50':>9} {'p99':>9}"
)


def table_row(s: RunSummary) -> str:
    return (
        f"{s.label[:22]:<22} {s.level:>10} {s.ok:>5} {s.failed:>5} {s.output_throughput:>8.1f} "
        f"{s.request_throughput:>6.2f} {fmt_ms(s.ttft_ms['p50']):>9} {fmt_ms(s.ttft_ms['p90']):>8} "
        f"{fmt_ms(s.ttft_ms['p99']):>8} {fmt_ms(s.itl_ms['p50']):>8} {fmt_ms(s.itl_ms['p99']):>7} "
        f"{fmt_ms(s.tpot_ms['p50']):>9} {fmt_ms(s.e2e_ms['p50']):>9} {fmt_ms(s.e2e_ms['p99']):>9}"
    )


def format_table(summaries: Sequence[RunSummary]) -> str:
    """Times in ms; failures listed under the table with their reasons."""
    lines = [TABLE_HEADER, "-" * len(TABLE_HEADER)]
    lines += [table_row(s) for s in summaries]
    for s in summaries:
        for reason, count in s.errors.items():
            lines.append(f"  {s.label} {s.level}: {count} failed: {reason}")
    return "\n".join(lines)


def median_summary(runs: Sequence[RunSummary]) -> RunSummary:
    """Repeats of one run combined: counts and tokens summed, every rate and percentile the median
    over the repeats (robust to one repeat disturbed by another job); `extra["repeats"]` keeps each
    repeat's throughput."""
    if not runs:
        raise ValueError("no runs")
    first = runs[0]

    def med(values: Iterable[float]) -> float:
        xs = [v for v in values if v is not None and not math.isnan(v)]
        return percentile(xs, 50) if xs else math.nan

    errors: Counter[str] = Counter()
    for s in runs:
        errors.update(s.errors)
    dists = {}
    for name in ("ttft_ms", "itl_ms", "tpot_ms", "e2e_ms"):
        keys = getattr(first, name).keys()
        dists[name] = {k: med(getattr(s, name)[k] for s in runs) for k in keys}
    return RunSummary(
        label=first.label,
        concurrency=first.concurrency,
        rate=first.rate,
        requests=sum(s.requests for s in runs),
        ok=sum(s.ok for s in runs),
        failed=sum(s.failed for s in runs),
        errors=dict(errors.most_common()),
        duration_s=sum(s.duration_s for s in runs),
        output_tokens=sum(s.output_tokens for s in runs),
        prompt_tokens=sum(s.prompt_tokens for s in runs),
        cached_tokens=sum(s.cached_tokens for s in runs),
        tokens_from_usage=sum(s.tokens_from_usage for s in runs),
        output_throughput=med(s.output_throughput for s in runs),
        request_throughput=med(s.request_throughput for s in runs),
        extra={"repeats": [round(s.output_throughput, 2) for s in runs]},
        **dists,
    )
