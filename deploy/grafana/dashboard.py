"""Builds `ponder-dashboard.json`, the Grafana dashboard for Ponder (run: `python deploy/grafana/dashboard.py`).

The panels are listed here as data (title, queries, unit) so the JSON stays
consistent: every panel reads the `datasource` template variable, filters on
the `model` and `strategy` variables, and uses `$__rate_interval` for rates.
`tests/test_deploy.py` checks that the committed JSON is this script's output
and that every metric a query names is one Ponder's `/metrics` exports;
`tests/test_prometheus.py` runs every query against a real Prometheus
scraping a live Ponder.

Label conventions: Ponder's series carry `model` and `strategy`; the vLLM
engines' series carry `model_name` (same values as `model`) and `engine`.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

OUT = Path(__file__).resolve().parent / "ponder-dashboard.json"
DS = {"type": "prometheus", "uid": "${datasource}"}
P = 'model=~"$model", strategy=~"$strategy"'  # Ponder series, both variables
M = 'model=~"$model"'  # Ponder series labelled by model only
V = 'model_name=~"$model"'  # vLLM engine series
RI = "$__rate_interval"


def rate(metric: str, sel: str = P, by: str = "strategy") -> str:
    return f"sum by ({by}) (rate({metric}{{{sel}}}[{RI}]))"


def quantile(q: float, metric: str, sel: str = P, by: str = "strategy") -> str:
    keep = f"{by}, le" if by else "le"
    return f"histogram_quantile({q}, sum by ({keep}) (rate({metric}_bucket{{{sel}}}[{RI}])))"


def mean(metric: str, sel: str = P, by: str = "strategy") -> str:
    return f"{rate(metric + '_sum', sel, by)} / {rate(metric + '_count', sel, by)}"


@dataclass(frozen=True)
class Query:
    expr: str
    legend: str


@dataclass(frozen=True)
class Panel:
    title: str
    description: str
    queries: tuple[Query, ...]
    unit: str = "short"
    kind: str = "timeseries"  # timeseries | stat | heatmap
    width: int = 8
    options: dict[str, Any] = field(default_factory=dict)


def q(expr: str, legend: str) -> Query:
    return Query(expr, legend)


REQUESTS = (
    Panel("Request rate by strategy and outcome", "Finished requests per second (ponder_requests_total).",
          (q(rate("ponder_requests_total", by="strategy, outcome"), "{{strategy}} {{outcome}}"),), "reqps"),
    Panel("Errors by strategy and outcome", "Requests that did not end `ok`: client_error (4xx), server_error (5xx), "
          "cancelled (client went away), rejected (admission), timeout. Errors raised before a strategy is known "
          "carry strategy=\"none\".",
          (q(rate("ponder_requests_total", f'{P}, outcome!="ok"', "strategy, outcome"), "{{strategy}} {{outcome}}"),),
          "reqps"),
    Panel("Error ratio", "Share of finished requests that did not end `ok`.",
          (q(f'(sum(rate(ponder_requests_total{{{P}, outcome!="ok"}}[{RI}])) or vector(0)) '
             f"/ sum(rate(ponder_requests_total{{{P}}}[{RI}]))", "errors"),), "percentunit", "stat"),
    Panel("In-flight requests", "Requests being served right now, by strategy.",
          (q(f"sum by (strategy) (ponder_requests_in_flight{{{P}}})", "{{strategy}}"),)),
    Panel("Queued and rejected requests", "Requests waiting for admission (gauge) and requests refused "
          "by admission control or per-key limits (per second).",
          (q("sum(ponder_requests_queued)", "queued"),
           q(rate("ponder_requests_total", f'{M}, outcome="rejected"', "model"), "rejected/s {{model}}"))),
    Panel("Queue wait", "Time requests waited for an admission place (p50, p95).",
          (q(quantile(0.5, "ponder_queue_wait_seconds", by=""), "p50"),
           q(quantile(0.95, "ponder_queue_wait_seconds", by=""), "p95")), "s"),
)

LATENCY = (
    Panel("End-to-end latency by strategy", "p50 and p95 of ponder_request_duration_seconds.",
          (q(quantile(0.5, "ponder_request_duration_seconds"), "{{strategy}} p50"),
           q(quantile(0.95, "ponder_request_duration_seconds"), "{{strategy}} p95")), "s"),
    Panel("Time to first token by strategy", "p50 and p95 of the time to the first reasoning or answer token.",
          (q(quantile(0.5, "ponder_time_to_first_token_seconds"), "{{strategy}} p50"),
           q(quantile(0.95, "ponder_time_to_first_token_seconds"), "{{strategy}} p95")), "s"),
    Panel("Inter-token latency by strategy", "p50 and p95 of the time between streamed token deltas.",
          (q(quantile(0.5, "ponder_inter_token_latency_seconds"), "{{strategy}} p50"),
           q(quantile(0.95, "ponder_inter_token_latency_seconds"), "{{strategy}} p95")), "s"),
)

TOKENS = (
    Panel("Tokens per second by kind", "Ponder's token account (prompt, cached, reasoning, answer) next to the "
          "tokens the vLLM engines generated.",
          (q(rate("ponder_tokens_total", by="kind"), "{{kind}}"),
           q(rate("vllm:generation_tokens_total", V, "model_name"), "engine generated {{model_name}}"))),
    Panel("Generated tokens per request by strategy", "Mean and p95 of every token a request generated across "
          "all its samples, rollouts and rounds.",
          (q(mean("ponder_request_generated_tokens"), "{{strategy}} mean"),
           q(quantile(0.95, "ponder_request_generated_tokens"), "{{strategy}} p95"))),
    Panel("Samples and engine requests per request", "Mean samples a strategy drew, and engine requests it made.",
          (q(mean("ponder_request_samples"), "{{strategy}} samples"),
           q(mean("ponder_request_engine_requests"), "{{strategy}} engine requests"))),
)

STRATEGIES = (
    Panel("Vote agreement distribution", "Share of the votes the chosen answer got (majority_vote, mcts), "
          "requests per bucket.",
          (q(f"sum by (le) (increase(ponder_vote_agreement_bucket{{{P}}}[{RI}]))", "{{le}}"),),
          kind="heatmap"),
    Panel("Reward score distribution", "Scores the scorers gave candidates, candidates per bucket.",
          (q(f"sum by (le) (increase(ponder_reward_score_bucket{{{P}}}[{RI}]))", "{{le}}"),),
          kind="heatmap"),
    Panel("Median reward score by scorer", "p50 of ponder_reward_score by scorer.",
          (q(quantile(0.5, "ponder_reward_score", by="scorer"), "{{scorer}}"),)),
    Panel("MCTS tree size", "Nodes in the search tree per MCTS request (p50, p95, mean).",
          (q(quantile(0.5, "ponder_mcts_tree_nodes", by=""), "p50"),
           q(quantile(0.95, "ponder_mcts_tree_nodes", by=""), "p95"),
           q(mean("ponder_mcts_tree_nodes", by="model"), "mean"))),
    Panel("Early stops and exhausted budgets", "Requests a strategy stopped early once the votes agreed, and "
          "requests that spent their whole compute budget.",
          (q(rate("ponder_early_stops_total"), "early stop {{strategy}}"),
           q(rate("ponder_budget_exhausted_total"), "budget exhausted {{strategy}}")), "reqps"),
)

ENGINE = (
    Panel("Engine aborts", "Engine requests aborted (disconnects, errors, deadlines) per second.",
          (q(rate("ponder_engine_aborts_total", M, "model"), "{{model}}"),), "ops"),
    Panel("KV-cache usage", "Share of each engine's KV-cache blocks in use.",
          (q(f"max by (model_name, engine) (vllm:kv_cache_usage_perc{{{V}}})", "{{model_name}} engine {{engine}}"),),
          "percentunit", options={"min": 0, "max": 1}),
    Panel("Engine running and waiting requests", "Sequences groups the vLLM scheduler is running and holding.",
          (q(f"sum by (model_name) (vllm:num_requests_running{{{V}}})", "running {{model_name}}"),
           q(f"sum by (model_name) (vllm:num_requests_waiting{{{V}}})", "waiting {{model_name}}"))),
    Panel("Prefix-cache hit rate", "Share of prompt tokens served from vLLM's prefix cache (tree search and "
          "Best-of-N reuse prefixes).",
          (q(f"{rate('vllm:prefix_cache_hits_total', V, 'model_name')} / "
             f"{rate('vllm:prefix_cache_queries_total', V, 'model_name')}", "{{model_name}}"),),
          "percentunit", options={"min": 0, "max": 1}),
)

ROWS: tuple[tuple[str, tuple[Panel, ...]], ...] = (
    ("Requests", REQUESTS),
    ("Latency", LATENCY),
    ("Tokens and compute", TOKENS),
    ("Strategies", STRATEGIES),
    ("Engine (vLLM)", ENGINE),
)


def _panel_json(p: Panel, pid: int, x: int, y: int) -> dict[str, Any]:
    targets = []
    for i, query in enumerate(p.queries):
        t: dict[str, Any] = {"refId": chr(ord("A") + i), "datasource": DS, "expr": query.expr,
                             "legendFormat": query.legend, "range": True}
        if p.kind == "heatmap":
            t["format"] = "heatmap"
        targets.append(t)
    defaults: dict[str, Any] = {"unit": p.unit, **p.options}
    options: dict[str, Any] = {"legend": {"displayMode": "list", "placement": "bottom", "showLegend": True},
                               "tooltip": {"mode": "multi", "sort": "desc"}}
    if p.kind == "heatmap":
        options = {"calculate": False, "yAxis": {"axisPlacement": "left"}, "cellGap": 1,
                   "color": {"mode": "scheme", "scheme": "Oranges", "exponent": 0.5, "fill": "dark-orange"},
                   "tooltip": {"show": True, "yHistogram": True}, "legend": {"show": True}}
    elif p.kind == "stat":
        options = {"reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
                   "colorMode": "value", "graphMode": "area", "textMode": "auto"}
        defaults["thresholds"] = {"mode": "absolute", "steps": [{"color": "green", "value": None},
                                                                 {"color": "orange", "value": 0.01},
                                                                 {"color": "red", "value": 0.05}]}
    return {"id": pid, "type": p.kind, "title": p.title, "description": p.description, "datasource": DS,
            "gridPos": {"h": 8, "w": p.width, "x": x, "y": y},
            "fieldConfig": {"defaults": defaults, "overrides": []}, "options": options, "targets": targets}


def _variable(name: str, label: str, query: str) -> dict[str, Any]:
    return {"name": name, "label": label, "type": "query", "datasource": DS, "definition": query,
            "query": {"query": query, "refId": f"{name}-values"}, "refresh": 2, "sort": 1,
            "multi": True, "includeAll": True, "allValue": ".*",
            "current": {"selected": True, "text": ["All"], "value": ["$__all"]}, "options": [], "hide": 0}


def build() -> dict[str, Any]:
    """The whole dashboard as a JSON-ready dict."""
    panels: list[dict[str, Any]] = []
    pid, y = 1, 0
    for title, row in ROWS:
        panels.append({"id": pid, "type": "row", "title": title, "collapsed": False, "panels": [],
                       "gridPos": {"h": 1, "w": 24, "x": 0, "y": y}})
        pid, y, x = pid + 1, y + 1, 0
        for p in row:
            if x + p.width > 24:
                x, y = 0, y + 8
            panels.append(_panel_json(p, pid, x, y))
            pid, x = pid + 1, x + p.width
        y += 8
    templating = [
        {"name": "datasource", "label": "Data source", "type": "datasource", "query": "prometheus",
         "current": {}, "options": [], "refresh": 1, "regex": "", "hide": 0},
        _variable("model", "Model", "label_values(ponder_requests_total, model)"),
        _variable("strategy", "Strategy", 'label_values(ponder_requests_total{model=~"$model"}, strategy)'),
    ]
    return {
        "uid": "ponder-overview", "title": "Ponder", "description": "Ponder: requests, latency, tokens, "
        "test-time strategies and the vLLM engines behind them.", "tags": ["ponder", "vllm", "llm"],
        "editable": True, "graphTooltip": 1, "id": None, "schemaVersion": 39, "version": 1,
        "time": {"from": "now-1h", "to": "now"}, "refresh": "10s", "timezone": "browser",
        "annotations": {"list": [{"builtIn": 1, "datasource": {"type": "grafana", "uid": "-- Grafana --"},
                                  "enable": True, "hide": True, "iconColor": "rgba(0, 211, 255, 1)",
                                  "name": "Annotations & Alerts", "type": "dashboard"}]},
        "templating": {"list": templating}, "panels": panels, "links": [],
    }


def render() -> str:
    return json.dumps(build(), indent=2) + "\n"


if __name__ == "__main__":
    if "--check" in sys.argv[1:]:
        sys.exit(0 if OUT.read_text() == render() else 1)
    OUT.write_text(render())
    print(f"wrote {OUT}")
