"""Every strategy through the real server and vLLM engine on ponder-tiny (and long_cot on SmolLM2).

Usage is checked against the engine itself: vLLM's own `vllm:generation_tokens_total` counter must
grow by exactly the request's `usage.completion_tokens` (the tests run one request at a time).
"""

from __future__ import annotations

import json
import re
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

from ponder.models.tiny_data import heldout_problems
from ponder.strategies.answers import answer_key

Q = [{"role": "user", "content": "What is 23 + 45 + 17?"}]


def generated_total(server: Any) -> float:
    text = httpx.get(f"{server.url}/metrics", timeout=10).text
    m = re.search(r'^vllm:generation_tokens_total\{[^}]*model_name="ponder-tiny"[^}]*\} ([0-9.e+]+)$', text, re.M)
    assert m, "vllm:generation_tokens_total not exported"
    return float(m.group(1))


def chat(http: httpx.Client, **body: Any) -> dict[str, Any]:
    r = http.post("/v1/chat/completions", json={"model": "ponder-tiny", "messages": Q, "max_tokens": 300, **body})
    assert r.status_code == 200, r.text
    return dict(r.json())


@pytest.mark.parametrize(
    "strategy",
    [
        "direct",
        "long_cot",
        {"name": "majority_vote", "n": 6},
        {"name": "best_of_n", "n": 4, "scorer": "confidence"},
        {"name": "mcts", "iterations": 4, "expand_k": 2},
    ],
    ids=["direct", "long_cot", "majority_vote", "best_of_n", "mcts"],
)
def test_strategy_usage_matches_the_engine(http: httpx.Client, tiny_server: Any, strategy: Any) -> None:
    before = generated_total(tiny_server)
    body = chat(http, strategy=strategy, temperature=1.0, seed=3)
    after = generated_total(tiny_server)
    usage, ponder = body["usage"], body["ponder"]
    assert usage["completion_tokens"] == after - before  # every sub-generation counted, nothing more
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    assert 0 < usage["completion_tokens_details"]["reasoning_tokens"] <= usage["completion_tokens"]
    name = strategy if isinstance(strategy, str) else strategy["name"]
    assert ponder["strategy"] == name
    content = body["choices"][0]["message"]["content"]
    assert answer_key(content) is not None, content
    if name in ("majority_vote", "best_of_n"):
        assert sum(s["tokens"] for s in ponder["samples"]) == usage["completion_tokens"]
        assert ponder["answer"] == answer_key(content)
        assert len(ponder["samples"]) == strategy["n"]
    if name == "best_of_n":
        assert all("score" in s for s in ponder["samples"])
    if name == "majority_vote":
        assert sum(v["votes"] for v in ponder["votes"]) == sum(1 for s in ponder["samples"] if s["answer"] is not None)
    if name == "mcts":
        assert ponder["tree_size"] > 1 and ponder["iterations"] >= 1 and ponder["chosen_path"][0] == 0


def test_stream_reasoning_comes_before_the_vote(tiny_server: Any) -> None:
    body = {
        "model": "ponder-tiny",
        "messages": Q,
        "max_tokens": 300,
        "stream": True,
        "temperature": 1.0,
        "seed": 1,
        "stream_options": {"include_usage": True},
        "strategy": {"name": "majority_vote", "n": 8},
    }
    order: list[tuple[str, float]] = []
    start = time.perf_counter()
    with httpx.stream(
        "POST", f"{tiny_server.url}/v1/chat/completions", json=body, headers=tiny_server.headers, timeout=120
    ) as r:
        event = "message"
        for line in r.iter_lines():
            if line.startswith("event:"):
                event = line[6:].strip()
            elif line.startswith("data:"):
                data = line[5:].strip()
                now = time.perf_counter() - start
                if data == "[DONE]":
                    order.append(("done", now))
                elif event != "message":
                    order.append((json.loads(data)["ponder"].get("phase") or event, now))
                else:
                    obj = json.loads(data)
                    for c in obj["choices"]:
                        if c["delta"].get("reasoning_content"):
                            order.append(("reasoning", now))
                        if c["delta"].get("content"):
                            order.append(("content", now))
                    if obj.get("usage"):
                        order.append(("usage", now))
                event = "message"
    kinds = [k for k, _ in order]
    first = {k: kinds.index(k) for k in set(kinds)}
    assert first["reasoning"] < first["sampling"] < first["vote"] < first["content"] < first["usage"] < first["done"]
    assert "ponder.result" in kinds


def test_openai_sdk_consumes_a_strategy_stream(client: Any) -> None:
    stream = client.chat.completions.create(
        model="ponder-tiny@best_of_n",
        messages=Q,
        max_tokens=300,
        stream=True,
        stream_options={"include_usage": True},
        seed=2,
    )
    chunks = list(stream)
    content = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert answer_key(content) is not None
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens > 0
    progress = [c for c in chunks if not c.choices and (c.model_extra or {}).get("ponder")]
    assert progress  # progress events arrive as chunks with empty choices; nothing breaks


def test_budget_forcing_thinks_longer_with_wait(http: httpx.Client) -> None:
    own = chat(http, strategy="long_cot", temperature=0)
    natural = own["ponder"]["thinking_tokens"]
    assert own["ponder"]["waits"] == 0
    forced = chat(http, strategy="long_cot", temperature=0, thinking={"min_tokens": natural + 30, "max_waits": 3})
    reasoning = forced["choices"][0]["message"]["reasoning_content"]
    assert forced["ponder"]["waits"] >= 1 and "Wait" in reasoning
    assert forced["ponder"]["thinking_tokens"] > natural
    assert len(reasoning) > len(own["choices"][0]["message"]["reasoning_content"])
    assert answer_key(forced["choices"][0]["message"]["content"]) is not None


def test_thinking_max_tokens_is_a_hard_cap(http: httpx.Client) -> None:
    body = chat(http, thinking={"max_tokens": 12}, temperature=1.0, seed=5)  # no strategy named: long_cot
    assert body["ponder"]["strategy"] == "long_cot"
    assert body["usage"]["completion_tokens_details"]["reasoning_tokens"] <= 12
    assert body["ponder"]["forced_end"] is True
    low = chat(http, reasoning_effort="minimal", temperature=1.0, seed=5)
    assert low["usage"]["completion_tokens_details"]["reasoning_tokens"] <= 32


def test_early_stop_spends_fewer_tokens_on_easy_problems(http: httpx.Client) -> None:
    # two small operands, sampled at T=0.5: problems this model mostly agrees with itself on
    easy = [[{"role": "user", "content": f"{a}+{b}"}] for a, b in ((11, 22), (30, 40), (12, 13), (50, 20), (21, 21))]
    fixed = early = stopped = 0
    for i, messages in enumerate(easy):
        vote = {"name": "majority_vote", "n": 16}
        fixed += chat(http, messages=messages, strategy=vote, seed=i, temperature=0.5)["usage"]["completion_tokens"]
        body = chat(http, messages=messages, strategy={**vote, "early_stop": 0.75, "wave": 4}, seed=i, temperature=0.5)
        early += body["usage"]["completion_tokens"]
        stopped += body["ponder"]["early_stop"]
    print(f"\nearly stop: {early} tokens vs {fixed} for fixed n=16 ({stopped}/{len(easy)} stopped early)")
    assert stopped >= 3 and early < 0.6 * fixed


def test_majority_vote_beats_single_samples_on_100_heldout_problems(http: httpx.Client) -> None:
    problems = heldout_problems(100, seed=7)

    def vote(i: int) -> dict[str, Any]:
        return chat(
            http,
            messages=problems[i].messages,
            strategy={"name": "majority_vote", "n": 8},
            temperature=1.0,
            seed=1000 + i,
        )["ponder"]

    with ThreadPoolExecutor(8) as pool:  # concurrent requests batch in the engine
        reports = list(pool.map(vote, range(len(problems))))
    vote_right = sum(r["answer"] == str(p.answer) for r, p in zip(reports, problems, strict=True))
    samples = [(s["answer"], str(p.answer)) for r, p in zip(reports, problems, strict=True) for s in r["samples"]]
    single, majority = sum(a == b for a, b in samples) / len(samples), vote_right / len(problems)
    print(f"\nheld-out accuracy at T=1.0: single sample {single:.1%}, majority of 8 {majority:.1%}")
    assert majority > single


@pytest.mark.slow
def test_long_cot_reflection_on_smollm2(smol_client: Any) -> None:
    r = smol_client.chat.completions.create(
        model="smollm2",
        messages=[{"role": "user", "content": "What is 12 + 30?"}],
        max_tokens=60,
        temperature=0,
        extra_body={"strategy": "long_cot"},
    )
    ponder = r.model_extra["ponder"]
    assert ponder["mode"] == "reflection" and ponder["reflections"] == 1
    assert r.choices[0].message.content
    assert (r.choices[0].message.model_extra or {}).get("reasoning_content")  # the first draft
    assert r.usage.completion_tokens > 0
