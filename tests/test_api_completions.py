"""/v1/completions through the real engine: text as generated, streaming, logprobs, usage."""

from __future__ import annotations

from typing import Any

from transformers import AutoTokenizer

from ponder.models.catalog import TINY_FOLDER

PROMPT = "<|user|>58+27+44<|end|><|assistant|>"


def test_completion_text_as_generated(client: Any) -> None:
    r = client.completions.create(model="ponder-tiny", prompt=PROMPT, temperature=0, max_tokens=300, logprobs=2)
    text = r.choices[0].text
    assert text.startswith("<think>") and "</think>" in text and "\\boxed{" in text
    assert r.usage.completion_tokens == len(r.choices[0].logprobs.tokens)
    tok = AutoTokenizer.from_pretrained(str(TINY_FOLDER))
    assert r.usage.prompt_tokens == len(tok.encode(PROMPT))


def test_completion_stream(client: Any) -> None:
    whole = client.completions.create(model="ponder-tiny", prompt=PROMPT, temperature=0, max_tokens=300)
    stream = client.completions.create(
        model="ponder-tiny",
        prompt=PROMPT,
        temperature=0,
        max_tokens=300,
        stream=True,
        stream_options={"include_usage": True},
    )
    text, usage = "", None
    for chunk in stream:
        usage = chunk.usage or usage
        for c in chunk.choices:
            text += c.text
    assert text == whole.choices[0].text
    assert usage is not None and usage.completion_tokens == whole.usage.completion_tokens


def whole_text(client: Any) -> str:
    return str(
        client.completions.create(model="ponder-tiny", prompt=PROMPT, temperature=0, max_tokens=300).choices[0].text
    )


def test_completion_token_prompt(client: Any) -> None:
    tok = AutoTokenizer.from_pretrained(str(TINY_FOLDER))
    ids = tok.encode(PROMPT)
    r = client.completions.create(model="ponder-tiny", prompt=ids, temperature=0, max_tokens=300)
    assert r.choices[0].text == whole_text(client)
