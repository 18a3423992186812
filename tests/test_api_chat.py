"""Chat completions through the real server and vLLM engine, with the OpenAI SDK as the client."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from transformers import AutoTokenizer

from ponder.models.catalog import TINY_FOLDER
from ponder.strategies.answers import answer_key

MESSAGES = [{"role": "user", "content": "What is 58 + 27 + 44?"}]


@pytest.fixture(scope="module")
def tok() -> Any:
    return AutoTokenizer.from_pretrained(str(TINY_FOLDER))


def prompt_len(tok: Any, messages: list[dict[str, str]]) -> int:
    text = tok.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    return len(tok.encode(text, add_special_tokens=False))


def extra(obj: Any, name: str) -> Any:
    return (obj.model_extra or {}).get(name)


def test_chat_answers_with_reasoning_and_exact_usage(client: Any, tok: Any) -> None:
    r = client.chat.completions.create(
        model="ponder-tiny", messages=MESSAGES, temperature=0, max_tokens=300, logprobs=True
    )
    choice = r.choices[0]
    reasoning = extra(choice.message, "reasoning_content")
    assert reasoning and "58+27=85" in reasoning.replace(" ", "")
    assert extra(choice.message, "reasoning") == reasoning
    assert answer_key(choice.message.content) is not None and "<think>" not in choice.message.content
    assert choice.finish_reason == "stop"
    tokens = [t.token for t in choice.logprobs.content]
    assert r.usage.completion_tokens == len(tokens)  # one logprob entry per generated token
    assert r.usage.prompt_tokens == prompt_len(tok, MESSAGES)
    assert r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens
    assert r.usage.completion_tokens_details.reasoning_tokens == tokens.index("</think>") + 1
    assert extra(r, "ponder")["strategy"] == "direct"


def test_stream_reasoning_then_content_then_usage(client: Any) -> None:
    whole = client.chat.completions.create(model="ponder-tiny", messages=MESSAGES, temperature=0, max_tokens=300)
    stream = client.chat.completions.create(
        model="ponder-tiny",
        messages=MESSAGES,
        temperature=0,
        max_tokens=300,
        stream=True,
        stream_options={"include_usage": True},
    )
    reasoning, content, order, usage, finish = "", "", [], None, None
    for chunk in stream:
        if chunk.usage is not None:
            usage = chunk.usage
        for c in chunk.choices:
            r = extra(c.delta, "reasoning_content")
            if r:
                reasoning += r
                order.append("r")
            if c.delta.content:
                content += c.delta.content
                order.append("c")
            finish = c.finish_reason or finish
    assert order.index("c") > order.index("r") and "r" not in order[order.index("c") :]
    assert reasoning == extra(whole.choices[0].message, "reasoning_content")
    assert content == whole.choices[0].message.content
    assert finish == "stop"
    assert usage is not None and usage.completion_tokens == whole.usage.completion_tokens
    assert usage.completion_tokens_details.reasoning_tokens == whole.usage.completion_tokens_details.reasoning_tokens


def test_n_choices_and_seeds_repeat(client: Any) -> None:
    kw: dict[str, Any] = dict(
        model="ponder-tiny", messages=MESSAGES, temperature=1.0, max_tokens=200, n=3, logprobs=True
    )
    a = client.chat.completions.create(seed=11, **kw)
    b = client.chat.completions.create(seed=11, **kw)
    c = client.chat.completions.create(seed=12, **kw)
    assert [x.index for x in a.choices] == [0, 1, 2]
    texts = lambda r: [(extra(x.message, "reasoning_content"), x.message.content) for x in r.choices]  # noqa: E731
    assert texts(a) == texts(b)
    assert texts(a) != texts(c)
    assert a.usage.completion_tokens == sum(len(x.logprobs.content) for x in a.choices)


def test_stop_strings(client: Any) -> None:
    r = client.chat.completions.create(
        model="ponder-tiny", messages=MESSAGES, temperature=0, max_tokens=200, stop=["="]
    )
    text = (extra(r.choices[0].message, "reasoning_content") or "") + r.choices[0].message.content
    assert "=" not in text and "58+27" in text.replace(" ", "")
    assert r.choices[0].finish_reason == "stop"


def test_max_tokens_gives_length(client: Any) -> None:
    r = client.chat.completions.create(model="ponder-tiny", messages=MESSAGES, temperature=0, max_completion_tokens=6)
    assert r.choices[0].finish_reason == "length" and r.usage.completion_tokens == 6


def test_unreadable_input_gets_a_clear_reply(client: Any) -> None:
    r = client.chat.completions.create(
        model="ponder-tiny",
        messages=[{"role": "user", "content": "hello, how are you?"}],
        temperature=0,
        max_tokens=200,
    )
    assert "add" in r.choices[0].message.content.lower()


async def test_sixteen_concurrent_streams(aclient: Any) -> None:
    async def one(i: int) -> tuple[int, int, str]:
        stream = await aclient.chat.completions.create(
            model="ponder-tiny",
            messages=[{"role": "user", "content": f"{10 + i}+{20 + i}+{30 + i}"}],
            temperature=1.0,
            seed=i,
            max_tokens=300,
            stream=True,
            stream_options={"include_usage": True},
            logprobs=True,
        )
        counted, usage, content = 0, 0, ""
        async for chunk in stream:
            if chunk.usage is not None:
                usage = chunk.usage.completion_tokens
            for c in chunk.choices:
                counted += len(c.logprobs.content) if c.logprobs and c.logprobs.content else 0
                content += c.delta.content or ""
        return counted, usage, content

    results = await asyncio.gather(*(one(i) for i in range(16)))
    assert len(results) == 16
    for counted, usage, content in results:
        assert usage > 0 and counted == usage
        assert answer_key(content) is not None


def test_models_health_version(http: Any, tiny_server: Any) -> None:
    ids = [m["id"] for m in http.get("/v1/models").json()["data"]]
    assert "ponder-tiny" in ids and "ponder-tiny@majority_vote" in ids and "ponder-tiny@mcts" in ids
    import httpx

    health = httpx.get(f"{tiny_server.url}/health").json()  # open without a key
    assert health["status"] == "ok" and health["models"]["ponder-tiny"]["status"] == "ok"
    assert http.get("/version").json()["version"]
