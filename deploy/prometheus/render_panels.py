"""Render some of the Grafana dashboard's panels to one PNG straight from Prometheus's HTTP API.

    python deploy/prometheus/render_panels.py --prometheus http://127.0.0.1:9090 --since 10m \\
        --out artifacts/prometheus-panels.png

Each panel's queries come from `deploy/grafana/dashboard.py` with the template variables
filled in (`$model`, `$strategy` → `.*` unless given, `$__rate_interval` → `--rate`), are run
through `/api/v1/query_range`, and are drawn with matplotlib, one subplot per panel, legends
as Grafana would label them. Needs only the standard library and matplotlib.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import re
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Any

DEFAULT_PANELS = (
    "Request rate by strategy and outcome",
    "End-to-end latency by strategy",
    "Tokens per second by kind",
    "Queued and rejected requests",
    "KV-cache usage",
    "Engine running and waiting requests",
)


def dashboard_module() -> Any:
    path = Path(__file__).resolve().parents[1] / "grafana" / "dashboard.py"
    spec = importlib.util.spec_from_file_location("ponder_dashboard_generator", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


def fill(expr: str, model: str = ".*", strategy: str = ".*", rate: str = "1m") -> str:
    """The expression with Grafana's variables replaced."""
    for name, value in (("model", model), ("strategy", strategy), ("__rate_interval", rate)):
        expr = expr.replace("${" + name + "}", value).replace("$" + name, value)
    return expr


def query_range(prometheus: str, expr: str, start: float, end: float, step: float) -> list[dict[str, Any]]:
    """`/api/v1/query_range`'s result list (one entry per series)."""
    params = urllib.parse.urlencode({"query": expr, "start": start, "end": end, "step": step})
    with urllib.request.urlopen(f"{prometheus}/api/v1/query_range?{params}", timeout=30) as r:
        body = json.load(r)
    if body.get("status") != "success":
        raise RuntimeError(f"{expr}: {body}")
    return list(body["data"]["result"])


def legend(template: str, labels: dict[str, str]) -> str:
    return re.sub(r"\{\{\s*(\w+)\s*\}\}", lambda m: labels.get(m.group(1), ""), template).strip() or "value"


def render(prometheus: str, titles: Sequence[str], start: float, end: float, out: Path, *,
           step: float = 2.0, model: str = ".*", strategy: str = ".*", rate: str = "1m") -> Path:
    """Draw the named dashboard panels over [start, end] into `out` (PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = {p.title: p for _, row in dashboard_module().ROWS for p in row}
    cols = 2
    rows = math.ceil(len(titles) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(7 * cols, 3.6 * rows), squeeze=False)
    for ax, title in zip(axes.flat, titles, strict=False):
        panel = panels[title]
        for query in panel.queries:
            for series in query_range(prometheus, fill(query.expr, model, strategy, rate), start, end, step):
                points = [(float(t) - start, float(v)) for t, v in series["values"] if math.isfinite(float(v))]
                if points:
                    xs, ys = zip(*points, strict=True)
                    ax.plot(xs, ys, label=legend(query.legend, series["metric"]), linewidth=1.4)
        unit = {"short": "", "percentunit": " (0-1)"}.get(panel.unit, f" ({panel.unit})")
        ax.set_title(title + unit, fontsize=10)
        ax.set_xlabel("seconds since start", fontsize=8)
        ax.tick_params(labelsize=8)
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7, loc="upper left", ncol=2)
    for ax in list(axes.flat)[len(titles):]:
        ax.axis("off")
    fig.suptitle(f"Ponder dashboard panels from Prometheus (rate window {rate}, step {step:g} s)", fontsize=12)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--prometheus", default="http://127.0.0.1:9090")
    p.add_argument("--since", default="15m", help="how far back: 90s, 15m, 2h")
    p.add_argument("--out", type=Path, default=Path("artifacts/prometheus-panels.png"))
    p.add_argument("--panel", action="append", help="panel title (repeatable; default: a representative set)")
    p.add_argument("--model", default=".*")
    p.add_argument("--strategy", default=".*")
    p.add_argument("--rate", default="1m", help="what $__rate_interval becomes")
    args = p.parse_args(argv)
    units = {"s": 1, "m": 60, "h": 3600}
    since = float(args.since[:-1]) * units[args.since[-1]]
    end = time.time()
    out = render(args.prometheus, args.panel or DEFAULT_PANELS, end - since, end, args.out,
                 step=max(1.0, since / 300), model=args.model, strategy=args.strategy, rate=args.rate)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
