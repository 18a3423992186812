"""The ponder-tiny tokenizer and chat template, as transformers loads them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from transformers import AutoTokenizer

from ponder.models import tiny_tokenizer as tt

BUNDLED = Path(tt.__file__).parent / "ponder-tiny"


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("tok")
    tt.write_tokenizer(out)
    return out


@pytest.fixture(scope="module")
def tok(folder):
    return AutoTokenizer.from_pretrained(folder)


def test_ids_and_vocab(tok):
    assert len(tok) == tt.VOCAB_SIZE
    assert tok.eos_token == "<|end|>" and tok.eos_token_id == tt.END_ID == 256
    assert tok.pad_token_id == tt.END_ID
    assert tok.convert_tokens_to_ids("<think>") == tt.THINK_ID == 260
    assert tok.convert_tokens_to_ids("</think>") == tt.THINK_END_ID == 261
    assert tok.encode("a", add_special_tokens=True) == [97]  # no BOS, id == byte


def test_think_tags_are_single_nonspecial_tokens(tok):
    ids = tok.encode("<think>\n1+2=3\n</think>\nok<|end|>", add_special_tokens=False)
    assert ids[0] == tt.THINK_ID and tt.THINK_END_ID in ids and ids[-1] == tt.END_ID
    assert len(ids) == 1 + 1 + 5 + 1 + 1 + 1 + 2 + 1
    text = tok.decode(ids, skip_special_tokens=True)
    assert text == "<think>\n1+2=3\n</think>\nok"
    assert "<think>" not in tok.all_special_tokens


def test_ascii_is_one_token_per_character(tok):
    text = "The answer is \\boxed{129}.\nwait, 58+27 is 85, not 75"
    assert len(tok.encode(text, add_special_tokens=False)) == len(text)


@settings(max_examples=200, deadline=None)
@given(st.text())
def test_round_trip_any_text(tok, text):
    ids = tok.encode(text, add_special_tokens=False)
    assert all(0 <= i < tt.VOCAB_SIZE for i in ids)
    assert tok.decode(ids) == text


def test_round_trip_unicode_samples(tok):
    samples = ["héllo wörld", "日本語のテキスト", "emoji 😀🎉", "  lead\tand\nnewlines  ", "\x00"]
    for text in samples:
        ids = tok.encode(text, add_special_tokens=False)
        assert tok.decode(ids) == text
        assert max(ids) < 256


def test_chat_template(tok):
    msgs = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "58+27+44"},
    ]
    text = tok.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True)
    assert text == "<|system|>Be brief.<|end|><|user|>58+27+44<|end|><|assistant|>"
    no_prompt = tok.apply_chat_template(msgs, tokenize=False, add_generation_prompt=False)
    assert no_prompt == "<|system|>Be brief.<|end|><|user|>58+27+44<|end|>"
    dev = [{"role": "developer", "content": "x"}, {"role": "user", "content": "1+2"}]
    rendered = tok.apply_chat_template(dev, tokenize=False, add_generation_prompt=True)
    assert rendered == "<|system|>x<|end|><|user|>1+2<|end|><|assistant|>"
    ids = tok.encode(text, add_special_tokens=False)
    assert ids[0] == 257 and ids[-1] == 259 and ids.count(tt.END_ID) == 2


def test_written_configs(folder):
    cfg = json.loads((folder / "tokenizer_config.json").read_text())
    assert cfg["chat_template"] == tt.CHAT_TEMPLATE
    assert cfg["eos_token"] == "<|end|>"
    gen = json.loads((folder / "generation_config.json").read_text())
    assert gen["eos_token_id"] == tt.END_ID


@pytest.mark.skipif(not (BUNDLED / "tokenizer.json").exists(), reason="model not trained yet")
def test_bundled_model_matches_builder(folder):
    for name in ("tokenizer.json", "tokenizer_config.json"):
        assert json.loads((BUNDLED / name).read_text()) == json.loads((folder / name).read_text())
    config = json.loads((BUNDLED / "config.json").read_text())
    assert config["vocab_size"] == tt.VOCAB_SIZE
    assert config["eos_token_id"] == tt.END_ID
    assert config["max_position_embeddings"] == tt.MODEL_MAX_LENGTH


def test_training_prompts_match_chat_template(tok):
    from ponder.models.tiny_data import make_examples
    from ponder.models.train_tiny import batches, encode_examples, render_prompt

    for ex in make_examples(300, seed=2):
        rendered = tok.apply_chat_template(ex.messages, tokenize=False, add_generation_prompt=True)
        assert render_prompt(ex.messages) == rendered
    seqs = encode_examples(64, seed=0)
    (batch,) = batches(seqs, 64, seed=0)[:1]
    for row in range(batch.shape[1]):
        labels = batch[1, row][batch[1, row] != -100].tolist()
        assert labels[-1] == tt.END_ID  # loss ends on <|end|>
        assert labels[0] == tt.THINK_ID  # and starts at the completion, not the prompt
