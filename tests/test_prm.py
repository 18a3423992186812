"""The process reward model: packed backbone, step positions, scoring paths, trained weights, server use."""

from __future__ import annotations

import asyncio
import random
from pathlib import Path
from typing import Any

import pytest
import torch

from ponder.kernels.step_scores import REDUCTIONS
from ponder.models import tiny_data
from ponder.models.tiny_data import DataConfig, heldout_problems
from ponder.models.tiny_tokenizer import END_ID, THINK_END_ID, THINK_ID
from ponder.rewards.backbone import BackboneConfig, PackedLlama, pack
from ponder.rewards.base import SCORERS, Candidate, ScorerUnavailable
from ponder.rewards.prm import RewardModelScorer, find_reward_model, prm_folder_for
from ponder.rewards.prm_data import Encoder, generator_records, make_record
from ponder.rewards.prm_model import ProcessRewardModel, surprise_features
from ponder.rewards.steps import pack_candidates, step_ends

SMALL = BackboneConfig(hidden=64, layers=2, heads=2, intermediate=96)
TINY_FOLDER = Path(__file__).resolve().parents[1] / "ponder" / "models" / "ponder-tiny"


def ragged(seed: int = 0) -> list[list[int]]:
    g = torch.Generator().manual_seed(seed)
    return [torch.randint(0, 262, (n,), generator=g).tolist() for n in (1, 17, 5, 64, 2, 33)]


@pytest.fixture(scope="module")
def small_prm() -> ProcessRewardModel:
    torch.manual_seed(0)
    model = ProcessRewardModel(SMALL).eval()
    torch.nn.init.normal_(model.head.weight, std=0.5)  # spread the probabilities
    return model


def test_packed_forward_equals_per_sequence_and_transformers() -> None:
    from transformers import LlamaModel

    torch.manual_seed(0)
    model = PackedLlama(SMALL).eval()
    hf = LlamaModel(SMALL.hf_config()).eval()
    hf.load_state_dict(model.state_dict(), strict=True)  # same parameter names
    seqs = ragged()
    ids, offsets = pack(seqs)
    with torch.no_grad():
        packed = model(ids, offsets)  # [T, d]
        assert packed.shape == (sum(map(len, seqs)), SMALL.hidden)
        for b, seq in enumerate(seqs):
            one = model(*pack([seq]))
            ref = hf(input_ids=torch.tensor([seq])).last_hidden_state[0]
            torch.testing.assert_close(packed[offsets[b] : offsets[b + 1]], one, atol=1e-5, rtol=1e-5)
            torch.testing.assert_close(one, ref, atol=1e-5, rtol=1e-5)


def test_step_ends_on_token_ids() -> None:
    enc = Encoder()
    ids = [THINK_ID] + enc.text("\n12+30=42\n  \n42+5=47") + [THINK_END_ID] + enc.text("\nThe answer is 47. ")
    ids += [END_ID] + enc.text("ignored\n")
    ends = step_ends(ids)
    assert [ids[e] for e in ends] == [10, THINK_END_ID, ord(".")]
    assert enc.decode(ids[: ends[0]]).endswith("12+30=42") and len(ends) == 3
    assert step_ends([]) == [] and step_ends(enc.text("\n \n")) == []


def test_step_ends_align_with_label_steps() -> None:
    records = generator_records(400, seed=3, negative=0.5)
    assert len(records) == 400  # make_record drops a trace only when the two disagree
    enc = Encoder()
    for r in records[:50]:
        ends = step_ends(r.completion)
        assert tuple(ends) == r.steps
        for pos in ends[:-1]:
            assert r.completion[pos] in (10, THINK_END_ID)
        assert enc.decode(r.completion[: ends[-1] + 1]).endswith(".")


def naive_scores(model: ProcessRewardModel, pairs: list[tuple[list[int], list[int]]], reduce: str) -> list[float]:
    """One sequence at a time, plain Python over the steps: what the packed kernel path must equal."""
    out = []
    for prompt, completion in pairs:
        with torch.no_grad():
            hidden, _ = model.hidden(pack_candidates([(prompt, completion)]))
        probs = [torch.sigmoid(model.head(hidden[len(prompt) + p])).item() for p in step_ends(completion)]
        if not probs:
            out.append(float("nan"))
            continue
        out.append({"min": min(probs), "prod": float(torch.tensor(probs).prod()), "last": probs[-1],
                    "mean": sum(probs) / len(probs)}[reduce])
    return out


def test_prm_hidden_packed_equals_per_sequence(small_prm: ProcessRewardModel) -> None:
    pairs = [(seq[:1], seq[1:]) for seq in ragged(1)]
    with torch.no_grad():
        packed = pack_candidates(pairs)
        hidden, _ = small_prm.hidden(packed)
        for b, pair in enumerate(pairs):
            one, _ = small_prm.hidden(pack_candidates([pair]))
            torch.testing.assert_close(hidden[packed.seq_offsets[b] : packed.seq_offsets[b + 1]], one,
                                       atol=1e-5, rtol=1e-5)


def test_surprise_features_restart_per_sequence() -> None:
    ids, offsets = pack([[5, 6, 7], [8], [9, 10]])
    logp = torch.log_softmax(torch.randn(6, 262), dim=-1)
    feats = surprise_features(logp, ids, offsets)  # [T, 3]
    assert feats.shape == (6, 3)
    assert feats[[0, 3, 4]].abs().sum() == 0  # first tokens: nothing predicted them
    assert feats[1, 0] * 4 == pytest.approx(float(logp[0, 6]))  # token 6 as predicted at position 0
    assert feats[5, 0] * 4 == pytest.approx(float(logp[4, 10]))


@pytest.mark.parametrize("reduce", REDUCTIONS)
def test_kernel_path_equals_naive_loop(small_prm: ProcessRewardModel, reduce: str) -> None:
    recs = generator_records(6, seed=1, negative=0.5)
    pairs = [(list(r.prompt), list(r.completion)) for r in recs] + [([1, 2, 3], [])]  # one with no steps
    out = small_prm.score(pack_candidates(pairs), reduce, backend="torch")
    want = naive_scores(small_prm, pairs, reduce)
    torch.testing.assert_close(out.scores, torch.tensor(want), atol=1e-5, rtol=1e-5, equal_nan=True)
    assert ((out.step_probs >= 0) & (out.step_probs <= 1)).all()


def test_scorer_modes_and_unit_interval(small_prm: ProcessRewardModel) -> None:
    recs = generator_records(5, seed=2, negative=0.5)
    cands = [Candidate(r.prompt, [*r.completion, END_ID], r.text) for r in recs]
    prm, orm = RewardModelScorer(small_prm, "prm"), RewardModelScorer(small_prm, "orm")
    assert prm.aggregates == REDUCTIONS and orm.aggregates == ("last",) and prm.logprobs == orm.logprobs == 0
    by_min = asyncio.run(prm.score(cands))  # default aggregate: min
    assert all(0.0 <= s.score <= 1.0 and s.score == pytest.approx(min(s.steps), abs=1e-6) for s in by_min)
    assert [len(s.steps) for s in by_min] == [len(r.steps) for r in recs]
    last = asyncio.run(prm.score(cands, "last"))
    outcome = asyncio.run(orm.score(cands))
    # a full trace ends on its answer step, so the outcome score is the last step's
    assert [s.score for s in outcome] == pytest.approx([s.score for s in last], abs=1e-6)
    assert all(len(s.steps) == 1 for s in outcome)
    with pytest.raises(ValueError):
        asyncio.run(orm.score(cands, "min"))
    assert asyncio.run(prm.score([])) == []
    empty = asyncio.run(prm.score([Candidate([1, 2], [], "")]))
    assert empty[0].score == 0.0 and empty[0].steps == ()


def test_unavailable_without_weights(tmp_path: Path, small_prm: ProcessRewardModel) -> None:
    from ponder.serve.scoring import ModelScorers
    from ponder.strategies.registry import ParamError

    model = tmp_path / "some-model"
    model.mkdir()
    (model / "config.json").write_text('{"vocab_size": 49152}')
    for name in ("prm", "orm"):
        with pytest.raises(ScorerUnavailable):
            SCORERS.get(name)(str(model))  # type: ignore[operator]
    scorers = ModelScorers(str(model))
    with pytest.raises(ParamError):
        scorers.get("prm")
    assert scorers.default == "confidence"
    small_prm.save(prm_folder_for(model))  # a PRM for another vocabulary is refused too
    with pytest.raises(ScorerUnavailable, match="vocabulary"):
        find_reward_model(model)


def test_save_load_roundtrip(tmp_path: Path, small_prm: ProcessRewardModel) -> None:
    small_prm.save(tmp_path / "p")
    loaded = ProcessRewardModel.load(tmp_path / "p")
    packed = pack_candidates([(list(range(5)), [10, 65, 66, 10, 67])])
    torch.testing.assert_close(loaded.score(packed).step_probs, small_prm.score(packed).step_probs)


def test_lean_decoder_matches_transformers_greedy() -> None:
    """The on-policy sampler's KV-cached loop decodes exactly as transformers does (ragged prompts)."""
    from transformers import LlamaForCausalLM

    from ponder.rewards.policy import load_policy
    from ponder.rewards.prm_data import training_prompts

    enc = Encoder()
    prompts = [enc.prompt(p.messages) for p in training_prompts(3, seed=3)]
    assert len({len(p) for p in prompts}) > 1
    tokens, chosen, top = load_policy(TINY_FOLDER).sample(prompts, 0.0, 24, torch.Generator(), 5, END_ID)
    hf = LlamaForCausalLM.from_pretrained(str(TINY_FOLDER)).eval()
    for r, p in enumerate(prompts):
        want = hf.generate(input_ids=torch.tensor([p]), do_sample=False, max_new_tokens=24, eos_token_id=END_ID,
                           pad_token_id=END_ID)[0, len(p) :].tolist()
        assert tokens[r, : len(want)].tolist() == want
    torch.testing.assert_close(chosen[:, 0], top[:, 0, 0])  # greedy picks the top token


@pytest.fixture(scope="module")
def trained() -> ProcessRewardModel:
    return find_reward_model(TINY_FOLDER)


def test_trained_prm_prefers_correct_traces(trained: ProcessRewardModel) -> None:
    """Held-out problems: a clean trace outscores a trace with uncorrected slips (min over steps)."""
    enc, rng, cfg = Encoder(), random.Random(7), DataConfig(slip_rate=0.0, verify_rate=0.0)
    pairs = []
    for p in heldout_problems(60, seed=11):
        for negative in (False, True):
            trace, _ = tiny_data._problem_trace(rng, p.operands, cfg, negative)
            rec = make_record(enc.prompt(p.messages), enc.text(trace.text), trace.text, p.operands, "x")
            assert rec is not None
            pairs.append((rec.prompt, rec.completion))
    scores = trained.score(pack_candidates(pairs), "min").scores.tolist()
    wins = sum(good > bad for good, bad in zip(scores[0::2], scores[1::2], strict=True))
    assert wins >= 0.9 * 60, f"clean trace ranked first on only {wins}/60 problems"


# ---------------------------------------------------------------- through the real server
def ask(tiny_server: Any, strategy: dict[str, Any]) -> Any:
    import httpx

    body = {"model": "ponder-tiny", "messages": [{"role": "user", "content": "What is 38 + 47 + 16?"}],
            "max_tokens": 300, "seed": 1, "strategy": strategy}
    return httpx.post(f"{tiny_server.url}/v1/chat/completions", json=body, headers=tiny_server.headers, timeout=300)


@pytest.mark.parametrize("scorer", ["prm", "orm"])
def test_server_best_of_n_with_reward_model(tiny_server: Any, scorer: str) -> None:
    r = ask(tiny_server, {"name": "best_of_n", "n": 4, "scorer": scorer})
    assert r.status_code == 200, r.text
    report = r.json()["ponder"]
    assert report["scorer"] == scorer and len(report["samples"]) == 4
    assert all(0.0 <= s["score"] <= 1.0 for s in report["samples"])
    chosen = max(report["samples"], key=lambda s: (s["score"], -s["index"]))
    assert report["chosen"] == chosen["index"]


def test_server_majority_vote_weighted_by_prm(tiny_server: Any) -> None:
    r = ask(tiny_server, {"name": "majority_vote", "n": 4, "weight": "prm"})
    assert r.status_code == 200, r.text
    report = r.json()["ponder"]
    assert report["scorer"] == "prm" and all(0.0 <= s["score"] <= 1.0 for s in report["samples"])


def test_server_rejects_unknown_aggregate(tiny_server: Any) -> None:
    r = ask(tiny_server, {"name": "best_of_n", "n": 2, "scorer": "orm", "aggregate": "min"})
    assert r.status_code == 400 and r.json()["error"]["param"] == "strategy.aggregate"
