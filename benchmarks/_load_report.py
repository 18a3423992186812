"""Saving load results: JSON (config + every run's summary) and a latency-vs-throughput PNG.

The plot has one line per series (a server, a strategy): x is output tokens/s,
y is TTFT p50, ITL p50 and end-to-end p50 (ms) in three panels; each point is
labelled with its level (c=4, 2 req/s), so the curve shows what latency each
throughput costs as concurrency grows.
"""

from __future__ import annotations

import json
import math
import platform
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from benchmarks._load_stats import RunSummary


def machine() -> dict[str, Any]:
    import os

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()}


def save_json(path: str | Path, data: Mapping[str, Any]) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    body = {"created": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "machine": machine(), **data}
    path.write_text(json.dumps(body, indent=2, default=_jsonable, allow_nan=False) + "\n")
    return path


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, RunSummary):
        return obj.to_dict()
    raise TypeError(f"cannot save {type(obj).__name__} as JSON")


PANELS = (("ttft_ms", "TTFT p50 (ms)"), ("itl_ms", "ITL p50 (ms)"), ("e2e_ms", "end-to-end p50 (ms)"))


def draw_panels(axes: Sequence[Any], series: Mapping[str, Sequence[RunSummary]]) -> None:
    """One latency panel per entry of PANELS on `axes`: p50 against output tokens/s, a line per series."""
    for ax, (key, ylabel) in zip(axes, PANELS, strict=True):
        for name, runs in series.items():
            pts = [(s.output_throughput, getattr(s, key)["p50"], s.level) for s in runs if s.ok]
            pts = [p for p in pts if p[1] is not None and not math.isnan(p[1])]
            if not pts:
                continue
            ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=name)
            for x, y, level in pts:
                ax.annotate(level, (x, y), textcoords="offset points", xytext=(4, 4), fontsize=7)
        ax.set_xlabel("output tokens/s")
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
        if ax.lines:
            ax.set_yscale("log")
    axes[0].legend(fontsize=8)


def plot(path: str | Path, series: Mapping[str, Sequence[RunSummary]], title: str = "") -> Path:
    """Latency (p50) against output throughput, one line per series."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig, axes = plt.subplots(1, len(PANELS), figsize=(5 * len(PANELS), 4.2))
    draw_panels(axes, series)
    fig.suptitle(title or "latency vs throughput")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
