"""Prometheus metrics: Ponder's own `ponder_*` series and the in-process vLLM engines' `vllm:*`.

Labels are bounded sets only: `model` (the served model names), `strategy`
(the registry's names), `outcome`, `kind`, `scorer`. Never a request id or a
user string. Histogram buckets span sub-second CPU runs to multi-minute
long-CoT runs.

vLLM registers its collectors in prometheus_client's default registry and
unregisters any earlier ones when a second engine starts in the same process;
`VllmCollectors` keeps each engine's collectors and merges their samples
(told apart by vLLM's own `model_name` label), so one scrape shows every
engine next to the strategies.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

from prometheus_client import (
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.core import Metric

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60, 120, 300, 600, 1200, 1800)
ITL_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.5, 5, 10)
TOKEN_BUCKETS = tuple(2**i for i in range(3, 18))  # 8 .. 131072
COUNT_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048)
SHARE_BUCKETS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 1.0)
SCORE_BUCKETS = (0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 1.0, 2, 5, 10, 20)
OUTCOMES = ("ok", "client_error", "server_error", "cancelled", "rejected", "timeout")

ML = ("model", "strategy")


class VllmCollectors:
    """Every in-process engine's vLLM collectors, exported as one set of families."""

    def __init__(self) -> None:
        self._engines: list[list[Any]] = []

    def capture(self) -> None:
        """Call right after an engine started: take its collectors out of the default registry."""
        mine = [c for c in list(REGISTRY._collector_to_names) if str(getattr(c, "_name", "")).startswith("vllm:")]
        for c in mine:
            REGISTRY.unregister(c)
        self._engines.append(mine)

    def collect(self) -> Iterable[Metric]:
        families: dict[str, Metric] = {}
        for collectors in self._engines:
            for collector in collectors:
                for family in collector.collect():
                    merged = families.get(family.name)
                    if merged is None:
                        merged = families[family.name] = Metric(
                            family.name, family.documentation, family.type, family.unit
                        )
                    merged.samples.extend(family.samples)
        return list(families.values())


class Metrics:
    def __init__(self) -> None:
        r = self.registry = CollectorRegistry(auto_describe=True)
        ProcessCollector(registry=r)
        PlatformCollector(registry=r)
        self.vllm = VllmCollectors()
        r.register(self.vllm)
        self.requests = Counter("ponder_requests", "Requests by strategy and outcome", (*ML, "outcome"), registry=r)
        self.latency = Histogram(
            "ponder_request_duration_seconds", "End-to-end request latency", ML, buckets=LATENCY_BUCKETS, registry=r
        )
        self.ttft = Histogram(
            "ponder_time_to_first_token_seconds",
            "Time to the first reasoning or answer token",
            ML,
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.itl = Histogram(
            "ponder_inter_token_latency_seconds",
            "Time between streamed token deltas",
            ML,
            buckets=ITL_BUCKETS,
            registry=r,
        )
        self.tokens = Counter(
            "ponder_tokens", "Tokens by kind (prompt, cached, reasoning, answer)", (*ML, "kind"), registry=r
        )
        self.request_tokens = Histogram(
            "ponder_request_generated_tokens",
            "Generated tokens per request (all samples)",
            ML,
            buckets=TOKEN_BUCKETS,
            registry=r,
        )
        self.samples = Histogram(
            "ponder_request_samples", "Samples generated per request", ML, buckets=COUNT_BUCKETS, registry=r
        )
        self.engine_requests = Histogram(
            "ponder_request_engine_requests", "Engine requests per request", ML, buckets=COUNT_BUCKETS, registry=r
        )
        self.tree_nodes = Histogram(
            "ponder_mcts_tree_nodes", "MCTS tree size per request", ML, buckets=COUNT_BUCKETS, registry=r
        )
        self.agreement = Histogram(
            "ponder_vote_agreement", "Share of the votes the chosen answer got", ML, buckets=SHARE_BUCKETS, registry=r
        )
        self.reward = Histogram(
            "ponder_reward_score",
            "Scores the scorers gave candidates",
            (*ML, "scorer"),
            buckets=SCORE_BUCKETS,
            registry=r,
        )
        self.early_stops = Counter(
            "ponder_early_stops", "Requests a strategy stopped early (agreement reached)", ML, registry=r
        )
        self.budget_exhausted = Counter(
            "ponder_budget_exhausted", "Requests that spent their whole compute budget", ML, registry=r
        )
        self.aborts = Counter(
            "ponder_engine_aborts", "Engine requests aborted (disconnects, errors, deadlines)", ("model",), registry=r
        )
        self.inflight = Gauge("ponder_requests_in_flight", "Requests being served", ML, registry=r)
        self.queue_wait = Histogram(
            "ponder_queue_wait_seconds", "Time a request waited for admission", ML, buckets=LATENCY_BUCKETS, registry=r
        )
        self.queued = Gauge("ponder_requests_queued", "Requests waiting for admission (server-wide)", registry=r)

    def declare(self, model: str, strategies: list[str]) -> None:
        """Create every model x strategy x outcome request series at 0, so rate() sees each first increment."""
        for strategy in (*strategies, "none"):
            for outcome in OUTCOMES:
                self.requests.labels(model, strategy, outcome)

    def render(self) -> bytes:
        return generate_latest(self.registry)


class RequestObserver:
    """Times one request's stream and records its account when it ends."""

    def __init__(self, metrics: Metrics, model: str, strategy: str) -> None:
        self.m, self.labels = metrics, (model, strategy)
        self._ttft = metrics.ttft.labels(model, strategy)  # resolved once: labels() costs a lock per call
        self._itl = metrics.itl.labels(model, strategy)
        self.start = time.perf_counter()
        self.last: float | None = None
        self.first: float | None = None
        self.m.inflight.labels(*self.labels).inc()
        self._done = False

    def token(self) -> None:
        now = time.perf_counter()
        if self.first is None:
            self.first = now
            self._ttft.observe(now - self.start)
        elif self.last is not None:
            self._itl.observe(now - self.last)
        self.last = now

    def finish(self, outcome: str, usage: Any = None, report: dict[str, Any] | None = None) -> None:
        if self._done:
            return
        self._done = True
        labels = self.labels
        self.m.inflight.labels(*labels).dec()
        self.m.requests.labels(*labels, outcome).inc()
        self.m.latency.labels(*labels).observe(time.perf_counter() - self.start)
        if usage is not None:
            answer = usage.completion_tokens - usage.reasoning_tokens
            for kind, value in (
                ("prompt", usage.prompt_tokens),
                ("cached", usage.cached_tokens),
                ("reasoning", usage.reasoning_tokens),
                ("answer", answer),
            ):
                if value:
                    self.m.tokens.labels(*labels, kind).inc(value)
            self.m.request_tokens.labels(*labels).observe(usage.completion_tokens)
            self.m.samples.labels(*labels).observe(usage.samples)
            self.m.engine_requests.labels(*labels).observe(usage.engine_requests)
        if report:
            self._report(report)

    def _report(self, report: dict[str, Any]) -> None:
        labels = self.labels
        if "tree_size" in report:
            self.m.tree_nodes.labels(*labels).observe(report["tree_size"])
        if "agreement" in report and report.get("votes"):
            self.m.agreement.labels(*labels).observe(report["agreement"])
        if report.get("early_stop"):
            self.m.early_stops.labels(*labels).inc()
        if report.get("budget_exhausted"):
            self.m.budget_exhausted.labels(*labels).inc()
        scorer = report.get("scorer")
        if scorer:
            for s in report.get("samples") or ():
                if isinstance(s.get("score"), int | float):
                    self.m.reward.labels(*labels, scorer).observe(s["score"])
