"""Tables, ratios, goal verdicts and the figure of `compare_vllm.py`.

Ratios are Ponder / vLLM at the same level: above 1 is better for throughput,
below 1 is better for latencies. "API ms/tok" is the CPU time the server's
HTTP process (not its engine children) used per output token: the front
end's own cost, which on a 2-core machine is taken from the engine. "other CPU" is what
jobs outside the benchmark used, in cores (see `_cpu.py`). Goals (issue 6) are figures the benchmark
tracks, printed PASS/MISS; they are not test assertions.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks._load_report import draw_panels
from benchmarks._load_stats import RunSummary, fmt_ms
from benchmarks._multisample import WayResult

DIRECT_THROUGHPUT_MIN = 0.95  # Ponder direct / vLLM, at every level
DIRECT_TTFT_P50_MAX = 1.10
MULTISAMPLE_MIN = 1.30  # majority_vote n=N in one request / N separate concurrent requests


def _ratio(a: float | None, b: float | None) -> float | None:
    if a is None or b is None or math.isnan(a) or math.isnan(b) or b <= 0:
        return None
    return a / b


def ratios(ponder: RunSummary, vllm: RunSummary) -> dict[str, float | None]:
    return {
        "throughput": _ratio(ponder.output_throughput, vllm.output_throughput),
        "ttft_p50": _ratio(ponder.ttft_ms["p50"], vllm.ttft_ms["p50"]),
        "ttft_p99": _ratio(ponder.ttft_ms["p99"], vllm.ttft_ms["p99"]),
        "itl_p50": _ratio(ponder.itl_ms["p50"], vllm.itl_ms["p50"]),
        "itl_p99": _ratio(ponder.itl_ms["p99"], vllm.itl_ms["p99"]),
        "tpot_p50": _ratio(ponder.tpot_ms["p50"], vllm.tpot_ms["p50"]),
        "e2e_p50": _ratio(ponder.e2e_ms["p50"], vllm.e2e_ms["p50"]),
        "api_ms_per_token": _ratio(ponder.extra.get("api_ms_per_token"), vllm.extra.get("api_ms_per_token")),
    }


def _cores(x: float | None) -> str:
    return "-" if x is None else f"{x:.2f}"


def _ms3(x: float | None) -> str:
    return "-" if x is None else f"{x:.3f}"


def _x(r: float | None) -> str:
    return "-" if r is None else f"{r:.2f}x"


def direct_table(vllm: Sequence[RunSummary], ponder: Sequence[RunSummary]) -> str:
    head = (f"{'level':>6} {'server':<8} {'ok':>4} {'fail':>4} {'tok/s':>8} {'req/s':>6} {'TTFT p50':>9} "
            f"{'TTFT p99':>9} {'ITL p50':>8} {'ITL p99':>8} {'TPOT p50':>9} {'E2E p50':>9} {'API ms/tok':>10} "
            f"{'other CPU':>9}")
    lines = [head, "-" * len(head)]
    for v, p in zip(vllm, ponder, strict=True):
        for name, s in (("vllm", v), ("ponder", p)):
            lines.append(f"{s.level:>6} {name:<8} {s.ok:>4} {s.failed:>4} {s.output_throughput:>8.1f} "
                         f"{s.request_throughput:>6.2f} {fmt_ms(s.ttft_ms['p50']):>9} {fmt_ms(s.ttft_ms['p99']):>9} "
                         f"{fmt_ms(s.itl_ms['p50']):>8} {fmt_ms(s.itl_ms['p99']):>8} {fmt_ms(s.tpot_ms['p50']):>9} "
                         f"{fmt_ms(s.e2e_ms['p50']):>9} {_ms3(s.extra.get('api_ms_per_token')):>10} "
                         f"{_cores(s.extra.get('foreign_cores')):>9}")
        r = ratios(p, v)
        lines.append(f"{'':>6} {'P/V':<8} {'':>4} {'':>4} {_x(r['throughput']):>8} {'':>6} {_x(r['ttft_p50']):>9} "
                     f"{_x(r['ttft_p99']):>9} {_x(r['itl_p50']):>8} {_x(r['itl_p99']):>8} {_x(r['tpot_p50']):>9} "
                     f"{_x(r['e2e_p50']):>9} {_x(r['api_ms_per_token']):>10}")
    for name, runs in (("vllm", vllm), ("ponder", ponder)):
        for s in runs:
            for reason, count in s.errors.items():
                lines.append(f"  {name} {s.level}: {count} failed: {reason}")
    return "\n".join(lines)


@dataclass(frozen=True)
class Goal:
    model: str
    name: str
    value: float | None
    target: str
    passed: bool
    where: str = ""

    def line(self) -> str:
        verdict = "PASS" if self.passed else "MISS"
        value = "n/a" if self.value is None else f"{self.value:.2f}x"
        where = f" ({self.where})" if self.where else ""
        return f"{verdict}  {self.model}: {self.name} {self.target}: {value}{where}"


def direct_goals(model: str, vllm: Sequence[RunSummary], ponder: Sequence[RunSummary]) -> list[Goal]:
    pairs = [(p.level, ratios(p, v), p.failed + v.failed) for v, p in zip(vllm, ponder, strict=True)]
    thr = [(r["throughput"], lv) for lv, r, _ in pairs]
    ttft = [(r["ttft_p50"], lv) for lv, r, _ in pairs]
    clean = all(f == 0 for _, _, f in pairs)
    worst_thr = min(thr, key=lambda t: math.inf if t[0] is None else t[0])
    worst_ttft = max(ttft, key=lambda t: -math.inf if t[0] is None else t[0])
    noise = _noise([s.extra.get("foreign_cores") for s in (*vllm, *ponder)])
    return [
        Goal(model, "direct throughput / vLLM", worst_thr[0], f">= {DIRECT_THROUGHPUT_MIN} at every level",
             clean and all(r is not None and r >= DIRECT_THROUGHPUT_MIN for r, _ in thr),
             f"worst at {worst_thr[1]}{noise}"),
        Goal(model, "direct TTFT p50 / vLLM", worst_ttft[0], f"<= {DIRECT_TTFT_P50_MAX} at every level",
             clean and all(r is not None and r <= DIRECT_TTFT_P50_MAX for r, _ in ttft),
             f"worst at {worst_ttft[1]}{noise}"),
    ]


NOISY_CORES = 0.3


def _noise(readings: Sequence[float | None]) -> str:
    worst = max((r for r in readings if r is not None), default=0.0)
    return f"; NOISY: other jobs used up to {worst:.2f} cores" if worst > NOISY_CORES else ""


def multisample_goals(model: str, samples: int, results: Sequence[WayResult]) -> list[Goal]:
    by = {w.way: w for w in results}
    mv = by["ponder_majority_vote"]
    goals = []
    for key, what in (("vllm_concurrent", "vLLM's server (HTTP proxy)"), ("ponder_concurrent", "the same server")):
        other = by[key]
        r = _ratio(mv.throughput, other.throughput)
        ok = r is not None and r >= MULTISAMPLE_MIN and mv.requests_failed == 0 and other.requests_failed == 0
        goals.append(Goal(model, f"majority_vote n={samples} tok/s / {samples} concurrent requests to {what}", r,
                          f">= {MULTISAMPLE_MIN}", ok, _noise([mv.foreign_cores, other.foreign_cores]).lstrip("; ")))
    return goals


def plot_compare(path: str | Path, per_model: dict[str, dict[str, Any]]) -> Path:
    """A row per model: three latency-vs-throughput panels (vLLM and Ponder) and the multi-sample bars."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = len(per_model)
    fig, axes = plt.subplots(rows, 4, figsize=(21, 4.4 * rows), squeeze=False)
    for row, (model, data) in zip(axes, per_model.items(), strict=True):
        draw_panels(row[:3], {"vllm": data["vllm"], "ponder": data["ponder"]})
        row[0].set_title(f"{model}: direct", fontsize=10)
        ms: Sequence[WayResult] = data.get("multisample") or []
        ax = row[3]
        if ms:
            ax.barh([w.title for w in ms], [w.throughput for w in ms],
                    color=["tab:orange" if w.way.startswith("ponder") else "tab:blue" for w in ms])
            ax.invert_yaxis()
            ax.tick_params(axis="y", labelsize=7)
            ax.set_xlabel("output tokens/s (N samples of one prompt)")
            ax.set_title(f"{model}: multi-sample", fontsize=10)
        else:
            ax.axis("off")
    fig.suptitle("Ponder vs vLLM's OpenAI server (same engine settings, loopback, CPU)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
