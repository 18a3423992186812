"""Ponder's metrics through a real Prometheus: every dashboard query returns data, and the values
are right.

Debian's `prometheus` binary (installed by `make`) runs on a free loopback port, scraping a live
Ponder every second. The Ponder here is this module's own (ponder-tiny, real vLLM engine) with
`--max-inflight 1 --max-queue 1`, for two reasons: a known set of requests must be the only
traffic the counters see, and the admission panels need a request that queues and one that is
refused, which the shared `tiny_server` (64 places) never produces. The traffic, twice (rate()
cannot show a series' first increment, so the second round is what the rate panels see): a
majority vote over 32 long samples that holds the only place and is then cancelled, a request
that queues behind it, one that is rejected, a 400, and requests through every strategy (direct
plain and streamed, majority_vote n=4 plain / early stop / budget exhausted, best_of_n n=4,
long_cot, mcts iterations=3). The test then reads Prometheus's HTTP API, checks every panel
query and the counters, and draws a few panels to `artifacts/prometheus-panels.png`.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import json
import math
import os
import re
import signal
import subprocess
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from ponder.serve.launch import Server, free_port
from tests.server import start_server
from tests.test_deploy import ALERTS, DEPLOY, ROOT, VLLM_METRICS, _load_module, dashboard_targets, substitute

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]  # the first test also starts Ponder
MODEL = "ponder-tiny"
QUESTION = [{"role": "user", "content": "What is 23 + 45 + 12?"}]
STRATEGIES = ("direct", "majority_vote", "best_of_n", "long_cot", "mcts")
PNG = ROOT / "artifacts" / "prometheus-panels.png"
CANCELLED = "majority_vote"  # the strategy of the stream that is cancelled
HOLDER = {"model": MODEL, "messages": QUESTION, "max_tokens": 1900, "ignore_eos": True, "stream": True,
          "strategy": {"name": CANCELLED, "n": 32}}


# -- a real Prometheus ----------------------------------------------------------------------------
@dataclass
class Prometheus:
    url: str
    proc: subprocess.Popen[bytes]
    log: Path

    def api(self, path: str, **params: Any) -> Any:
        r = httpx.get(f"{self.url}/api/v1/{path}", params=params, timeout=30)
        body = r.json()
        assert body["status"] == "success", f"{path} {params}: {body}"
        return body["data"]

    def value(self, expr: str, at: float) -> float:
        """An instant query's single value (0 when it returns nothing)."""
        result = self.api("query", query=expr, time=at)["result"]
        assert len(result) <= 1, f"{expr}: {result}"
        return float(result[0]["value"][1]) if result else 0.0

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)


def start_prometheus(folder: Path, target: str) -> Prometheus:
    config = {
        "global": {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(ALERTS)],
        "scrape_configs": [{"job_name": "ponder", "static_configs": [{"targets": [target]}]}],
    }
    (folder / "prometheus.yml").write_text(yaml.safe_dump(config))
    port = free_port()
    log = folder / "prometheus.log"
    proc = subprocess.Popen(
        ["prometheus", f"--config.file={folder / 'prometheus.yml'}", f"--storage.tsdb.path={folder / 'data'}",
         f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn"],
        stdout=log.open("wb"), stderr=subprocess.STDOUT, start_new_session=True)
    prom = Prometheus(f"http://127.0.0.1:{port}", proc, log)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert proc.poll() is None, log.read_text()
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{prom.url}/-/ready", timeout=2).status_code == 200:
                return prom
        time.sleep(0.3)
    prom.stop()
    raise RuntimeError(f"prometheus did not become ready:\n{log.read_text()}")


# -- the traffic and what it should have counted ----------------------------------------------------
@dataclass
class Ledger:
    """What was sent, as the metrics should count it."""

    outcomes: Counter[tuple[str, str]] = field(default_factory=Counter)  # (strategy, outcome)
    tokens: defaultdict[tuple[str, str], int] = field(default_factory=lambda: defaultdict(int))  # (strategy, kind)
    reports: defaultdict[str, list[dict[str, Any]]] = field(default_factory=lambda: defaultdict(list))
    start: float = 0.0
    end: float = 0.0

    def ok(self, strategy: str, body: dict[str, Any]) -> None:
        self.outcomes[strategy, "ok"] += 1
        u = body["usage"]
        reasoning = u["completion_tokens_details"]["reasoning_tokens"]
        for kind, value in (("prompt", u["prompt_tokens"]), ("cached", u["prompt_tokens_details"]["cached_tokens"]),
                            ("reasoning", reasoning), ("answer", u["completion_tokens"] - reasoning)):
            self.tokens[strategy, kind] += value
        self.reports[strategy].append(body.get("ponder") or {})


def _chat(http: httpx.Client, strategy: Any, **extra: Any) -> httpx.Response:
    body = {"model": MODEL, "messages": QUESTION, "max_tokens": 32, "strategy": strategy, **extra}
    return http.post("/v1/chat/completions", json=body)


def _admission(server: Server, http: httpx.Client, ledger: Ledger) -> None:
    """A holds the only place and is cancelled; B queues behind it; C finds the queue full.

    A is a majority vote over 32 long samples: it must still be generating when it is cancelled
    seconds later, whatever the machine's speed (a stream whose output fits in the socket buffers
    ends on the server as soon as it is generated, whether or not the client reads it).
    """
    with httpx.Client(base_url=server.url, headers=server.headers, timeout=120) as holder, \
            concurrent.futures.ThreadPoolExecutor(1) as pool:
        with holder.stream("POST", "/v1/chat/completions", json=HOLDER) as a:
            assert a.status_code == 200
            # Keep the line iterator alive: a discarded one is closed, and closing it drops the connection.
            lines = a.iter_lines()
            for line in lines:
                if line.startswith("data:"):
                    break  # admitted and running
            b = pool.submit(_chat, http, "direct")
            deadline = time.monotonic() + 30
            while httpx.get(f"{server.url}/health", timeout=5).json()["queued"] < 1:
                assert time.monotonic() < deadline and not b.done(), f"B never queued: {b.done() and b.result().text}"
                time.sleep(0.05)
            c = _chat(http, "direct")
            assert c.status_code == 503, c.text
            ledger.outcomes["*", "rejected"] += 1
            time.sleep(2.5)  # let a few scrapes see one running, one queued
            assert not b.done(), "A finished before it was cancelled: make it longer"
            del lines
        ledger.outcomes[CANCELLED, "cancelled"] += 1  # leaving the block closed A's connection
        rb = b.result(timeout=120)
        assert rb.status_code == 200, rb.text
        ledger.ok("direct", rb.json())


def _strategies(http: httpx.Client, ledger: Ledger) -> None:
    """One request through each strategy (and variant), one streamed, one 400."""
    plain: list[tuple[Any, dict[str, Any]]] = [
        ("direct", {}),
        ({"name": "majority_vote", "n": 4}, {"max_tokens": 48}),
        ({"name": "majority_vote", "n": 4, "early_stop": 1.0, "wave": 2}, {"max_tokens": 48, "temperature": 0.01}),
        ({"name": "majority_vote", "n": 4, "budget": 3}, {}),
        ({"name": "best_of_n", "n": 4}, {"max_tokens": 48}),
        ("long_cot", {"max_tokens": 64, "thinking": {"max_tokens": 48}}),
        ({"name": "mcts", "iterations": 3}, {"max_tokens": 32}),
    ]
    for strategy, extra in plain:
        r = _chat(http, strategy, **extra)
        assert r.status_code == 200, r.text
        ledger.ok(strategy if isinstance(strategy, str) else strategy["name"], r.json())
    stream = {"stream": True, "stream_options": {"include_usage": True}}
    with http.stream("POST", "/v1/chat/completions", json={"model": MODEL, "messages": QUESTION, "max_tokens": 24,
                                                           "strategy": "direct", **stream}) as r:
        assert r.status_code == 200
        usage = [line for line in r.iter_lines() if '"usage":{' in line.replace(" ", "")]
    chunk = json.loads(usage[-1].removeprefix("data:").strip())
    ledger.ok("direct", {"usage": chunk["usage"]})
    bad = _chat(http, "no_such_strategy")
    assert bad.status_code == 400
    ledger.outcomes["*", "client_error"] += 1


@pytest.fixture(scope="module")
def ponder(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    server = start_server(tmp_path_factory.mktemp("prom-ponder"), "--model", MODEL, "--max-model-len", "2048",
                          "--max-inflight", "1", "--max-queue", "1", "--queue-timeout", "120")
    yield server
    server.stop()


@pytest.fixture(scope="module")
def prometheus(ponder: Server, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Prometheus]:
    prom = start_prometheus(tmp_path_factory.mktemp("prometheus"), ponder.url.removeprefix("http://"))
    yield prom
    prom.stop()


@pytest.fixture(scope="module")
def ledger(ponder: Server, prometheus: Prometheus) -> Ledger:
    """Send the traffic, then wait until Prometheus has scraped past its end."""
    led = Ledger(start=time.time())
    time.sleep(3)  # a few scrapes of the idle server first
    with httpx.Client(base_url=ponder.url, headers=ponder.headers, timeout=300) as http:
        # rate() cannot see the first increment of a series that appears with it, so a second
        # round (after a few scrapes) gives every histogram and counter an increase to show.
        for _ in range(2):
            _admission(ponder, http, led)
            _strategies(http, led)
            time.sleep(3)
    done = time.time()
    deadline = time.monotonic() + 30
    while prometheus.value('timestamp(up{job="ponder"})', time.time()) < done + 1.5:
        assert time.monotonic() < deadline, "no scrape after the traffic"
        time.sleep(0.5)
    led.end = time.time()
    return led


def _sum(prom: Prometheus, ledger: Ledger, expr: str) -> float:
    return prom.value(f"sum({expr})", ledger.end)


# -- every panel returns data ----------------------------------------------------------------------
@pytest.mark.parametrize("model", [MODEL, ".*"])
def test_every_dashboard_query_returns_data(prometheus: Prometheus, ledger: Ledger, model: str) -> None:
    empty = []
    for title, ref, expr in dashboard_targets():
        q = substitute(expr, model=model, strategy=".*", rate_interval="1m")
        result = prometheus.api("query_range", query=q, start=ledger.start, end=ledger.end, step=1)["result"]
        finite = [v for s in result for _, v in s["values"] if math.isfinite(float(v))]
        if not finite:
            empty.append(f"{title} [{ref}]: {q}")
    assert not empty, "queries without data:\n" + "\n".join(empty)


def test_template_variables_have_values(prometheus: Prometheus, ledger: Ledger) -> None:
    models = prometheus.api("label/model/values", **{"match[]": "ponder_requests_total"})
    assert MODEL in models
    strategies = prometheus.api("label/strategy/values", **{"match[]": f'ponder_requests_total{{model=~"{MODEL}"}}'})
    assert set(STRATEGIES) <= set(strategies)


# -- the values are right ------------------------------------------------------------------------
def test_requests_by_outcome(prometheus: Prometheus, ledger: Ledger) -> None:
    for (strategy, outcome), n in ledger.outcomes.items():
        sel = f'outcome="{outcome}"' + ("" if strategy == "*" else f', strategy="{strategy}"')
        assert _sum(prometheus, ledger, f"ponder_requests_total{{{sel}}}") == n, (strategy, outcome)
    assert _sum(prometheus, ledger, "ponder_requests_total") == sum(ledger.outcomes.values())


def test_tokens_equal_usage(prometheus: Prometheus, ledger: Ledger) -> None:
    for (strategy, kind), n in ledger.tokens.items():
        got = _sum(prometheus, ledger, f'ponder_tokens_total{{strategy="{strategy}", kind="{kind}"}}')
        if strategy == CANCELLED:
            assert got >= n, (strategy, kind)  # plus the cancelled stream's tokens, which no client saw
        else:
            assert got == n, (strategy, kind, got)
    for strategy in STRATEGIES:
        if strategy == CANCELLED:
            continue
        sent = sum(v for (s, k), v in ledger.tokens.items() if s == strategy and k in ("reasoning", "answer"))
        assert _sum(prometheus, ledger, f'ponder_request_generated_tokens_sum{{strategy="{strategy}"}}') == sent


def test_histogram_counts(prometheus: Prometheus, ledger: Ledger) -> None:
    runs: Counter[str] = Counter()
    for (strategy, _), n in ledger.outcomes.items():
        if strategy != "*":
            runs[strategy] += n
    for strategy, n in runs.items():
        for hist in ("ponder_request_duration_seconds", "ponder_request_samples", "ponder_request_generated_tokens"):
            assert _sum(prometheus, ledger, f'{hist}_count{{strategy="{strategy}"}}') == n, (hist, strategy)
    assert _sum(prometheus, ledger, "ponder_queue_wait_seconds_count") == sum(runs.values())
    reports = [r for rs in ledger.reports.values() for r in rs]
    trees = [r["tree_size"] for r in reports if "tree_size" in r]
    assert trees and _sum(prometheus, ledger, "ponder_mcts_tree_nodes_count") == len(trees)
    assert _sum(prometheus, ledger, "ponder_mcts_tree_nodes_sum") == sum(trees)
    votes = [r for r in reports if "agreement" in r and r.get("votes")]
    assert votes and _sum(prometheus, ledger, "ponder_vote_agreement_count") == len(votes)
    scores = [s for r in reports if r.get("scorer")
              for s in r.get("samples", ()) if isinstance(s.get("score"), int | float)]
    assert scores and _sum(prometheus, ledger, "ponder_reward_score_count") == len(scores)
    drawn = sum(len(r.get("samples", ())) for r in ledger.reports["best_of_n"])
    assert drawn and _sum(prometheus, ledger, 'ponder_request_samples_sum{strategy="best_of_n"}') == drawn
    for flag, metric in (("early_stop", "ponder_early_stops_total"),
                         ("budget_exhausted", "ponder_budget_exhausted_total")):
        n = sum(1 for r in reports if r.get(flag))
        assert n >= 1 and _sum(prometheus, ledger, metric) == n, flag


def test_admission_and_cancellation(prometheus: Prometheus, ledger: Ledger) -> None:
    window = f"[{int(ledger.end - ledger.start) + 5}s:1s]"  # a subquery over the whole run
    assert prometheus.value(f"max_over_time(sum(ponder_requests_in_flight){window})", ledger.end) == 1
    assert _sum(prometheus, ledger, "ponder_requests_in_flight") == 0
    assert prometheus.value(f'max_over_time(sum(vllm:num_requests_running{{model_name="{MODEL}"}}){window})',
                            ledger.end) >= 1
    # Each B waited seconds for its A; every other request was admitted at once.
    waited = _sum(prometheus, ledger, "ponder_queue_wait_seconds_count") - \
        _sum(prometheus, ledger, 'ponder_queue_wait_seconds_bucket{le="0.5"}')
    assert waited == ledger.outcomes["*", "rejected"] == 2
    # While A ran and B waited, a scrape saw one queued request; now none.
    assert prometheus.value(f"max_over_time(sum(ponder_requests_queued){window})", ledger.end) == 1
    assert _sum(prometheus, ledger, "ponder_requests_queued") == 0
    cancelled = sum(n for (_, outcome), n in ledger.outcomes.items() if outcome == "cancelled")
    assert _sum(prometheus, ledger, "ponder_engine_aborts_total") == cancelled  # one engine request each


def test_vllm_metrics_on_the_same_endpoint(ponder: Server, ledger: Ledger) -> None:
    text = httpx.get(f"{ponder.url}/metrics", timeout=30).text
    names = {line.split("{")[0].split(" ")[0] for line in text.splitlines() if line and not line.startswith("#")}
    assert names >= VLLM_METRICS, VLLM_METRICS - names
    assert re.search(rf'^vllm:kv_cache_usage_perc\{{[^}}]*model_name="{MODEL}"', text, re.M)


def test_ponder_metrics_pass_promtool_lint(ponder: Server, ledger: Ledger) -> None:
    text = httpx.get(f"{ponder.url}/metrics", timeout=30).text
    ours = "\n".join(line for line in text.splitlines()
                     if re.match(r"(# (HELP|TYPE) )?ponder_", line)) + "\n"
    result = subprocess.run(["promtool", "check", "metrics"], input=ours, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_alert_rules_evaluate(prometheus: Prometheus, ledger: Ledger) -> None:
    groups = prometheus.api("rules")["groups"]
    rules = [r for g in groups for r in g["rules"]]
    assert len(rules) == sum(len(g["rules"]) for g in yaml.safe_load(ALERTS.read_text())["groups"])
    assert all(r["health"] == "ok" for r in rules), [(r["name"], r.get("lastError")) for r in rules]


def test_render_panels_png(prometheus: Prometheus, ledger: Ledger) -> None:
    module = _load_module(DEPLOY / "prometheus" / "render_panels.py", "ponder_render_panels")
    out = module.render(prometheus.url, module.DEFAULT_PANELS, ledger.start, ledger.end, PNG, step=1.0, rate="15s")
    assert out.stat().st_size > 20_000 and out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
