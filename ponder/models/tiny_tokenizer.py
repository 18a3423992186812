"""The `ponder-tiny` tokenizer: byte-level, no merges, plus six added tokens.

Contract (other parts of Ponder build against it):

- ids 0..255 are the 256 byte symbols in byte order (id == byte value), so any
  text encodes with no unknown token and ASCII is one token per character;
- ByteLevel pre-tokenizer (add_prefix_space=False) and ByteLevel decoder;
- special added tokens `<|end|>` (EOS and pad), `<|system|>`, `<|user|>`,
  `<|assistant|>`; NON-special added tokens `<think>` and `</think>`, which
  therefore survive `skip_special_tokens=True` in decoded text.

`write_tokenizer(folder)` writes tokenizer.json, tokenizer_config.json (with the
chat template) and generation_config.json.
"""

from __future__ import annotations

import json
from pathlib import Path

from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers

END = "<|end|>"
SYSTEM = "<|system|>"
USER = "<|user|>"
ASSISTANT = "<|assistant|>"
THINK = "<think>"
THINK_END = "</think>"

SPECIAL_TOKENS = (END, SYSTEM, USER, ASSISTANT)
THINK_TOKENS = (THINK, THINK_END)

END_ID = 256
THINK_ID = 260
THINK_END_ID = 261
VOCAB_SIZE = 262
MODEL_MAX_LENGTH = 2048

# A `developer` message (OpenAI's newer name for system) is rendered as system.
CHAT_TEMPLATE = (
    "{% for m in messages %}"
    "{% set role = 'system' if m['role'] == 'developer' else m['role'] %}"
    "<|{{ role }}|>{{ m['content'] }}<|end|>"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)


def _byte_symbols() -> list[str]:
    """The 256 ByteLevel symbols ordered by the byte each one stands for."""
    bs = list(range(ord("!"), ord("~") + 1))
    bs += list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    by_byte = dict(zip(bs, cs, strict=True))
    return [chr(by_byte[b]) for b in range(256)]


def build_tokenizer() -> Tokenizer:
    """The tokenizer object; ids are fixed by the order tokens are added."""
    symbols = _byte_symbols()
    assert set(symbols) == set(pre_tokenizers.ByteLevel.alphabet())
    vocab = {s: i for i, s in enumerate(symbols)}
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in SPECIAL_TOKENS])
    tok.add_tokens([AddedToken(t, special=False, normalized=False) for t in THINK_TOKENS])
    assert tok.token_to_id(END) == END_ID
    assert tok.token_to_id(THINK_END) == THINK_END_ID
    assert tok.get_vocab_size() == VOCAB_SIZE
    return tok


def tokenizer_config() -> dict[str, object]:
    added = {}
    for i, t in enumerate(SPECIAL_TOKENS + THINK_TOKENS, start=END_ID):
        added[str(i)] = {
            "content": t,
            "lstrip": False,
            "normalized": False,
            "rstrip": False,
            "single_word": False,
            "special": t in SPECIAL_TOKENS,
        }
    return {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "added_tokens_decoder": added,
        "bos_token": None,
        "eos_token": END,
        "pad_token": END,
        "unk_token": None,
        "clean_up_tokenization_spaces": False,
        "model_max_length": MODEL_MAX_LENGTH,
        "chat_template": CHAT_TEMPLATE,
    }


def generation_config() -> dict[str, object]:
    # No sampling defaults here: vLLM would adopt them as the server's defaults.
    return {"eos_token_id": END_ID, "pad_token_id": END_ID}


def write_tokenizer(folder: str | Path) -> None:
    """Write tokenizer.json, tokenizer_config.json and generation_config.json."""
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    build_tokenizer().save(str(out / "tokenizer.json"))
    for name, data in (
        ("tokenizer_config.json", tokenizer_config()),
        ("generation_config.json", generation_config()),
    ):
        (out / name).write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n")
