"""compare_vllm's pure parts: both servers' engine settings, prefix-cache counters, goal verdicts,
CPU readings, repeats combined into medians, per-model plans. (`test_load.py` covers the load tester.)"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest

from benchmarks._load_stats import RequestResult, summarize


def test_prefix_cache_counters_parse() -> None:
    from benchmarks._servers import parse_prefix_cache

    text = ('# HELP vllm:prefix_cache_hits Prefix cache hits, in terms of number of cached tokens.\n'
            'vllm:prefix_cache_queries_total{engine="0",model_name="m"} 454.0\n'
            'vllm:prefix_cache_queries_created{engine="0",model_name="m"} 1.7e+09\n'
            'vllm:prefix_cache_hits_total{engine="0",model_name="m"} 128.0\n'
            'vllm:prefix_cache_hits_total{engine="1",model_name="m"} 2.0\n')
    assert parse_prefix_cache(text) == (130.0, 454.0)
    assert parse_prefix_cache("ponder_requests_total 3\n") is None


def test_both_servers_get_the_same_engine_settings(tmp_path: Path) -> None:
    import torch

    from benchmarks._servers import EngineSettings

    (tmp_path / "config.json").write_text(json.dumps({"max_position_embeddings": 4096}))
    think = [{"content": "<think>"}, {"content": "</think>"}]
    (tmp_path / "tokenizer.json").write_text(json.dumps({"added_tokens": think}))
    s = EngineSettings(folder=str(tmp_path), name="m", dtype="float32", max_model_len=1024, kv_cache_gib=2.0,
                       ponder_model="m")
    vllm, ponder = s.vllm_command(1), s.ponder_command(2)
    # Ponder's engine: whole prefills on the CPU; a <think> model's thought split into reasoning
    if not torch.cuda.is_available():
        assert "--no-enable-chunked-prefill" in vllm and vllm[vllm.index("--max-num-batched-tokens") + 1] == "2048"
    assert vllm[vllm.index("--reasoning-parser") + 1] == "deepseek_r1"
    (tmp_path / "tokenizer.json").write_text(json.dumps({"added_tokens": []}))
    assert "--reasoning-parser" not in s.vllm_command(1)
    for flag, value in (("--dtype", "float32"), ("--max-model-len", "1024"), ("--seed", "0"), ("--max-num-seqs", "256"),
                        ("--kv-cache-memory-bytes", str(2 << 30))):
        assert vllm[vllm.index(flag) + 1] == value
    assert {"--enforce-eager", "--enable-prefix-caching"} <= set(vllm)
    assert ponder[ponder.index("--max-model-len") + 1] == "1024" and ponder[ponder.index("--kv-cache-gib") + 1] == "2.0"
    assert s.env()["VLLM_CPU_KVCACHE_SPACE"] == "2"


def test_goal_verdicts() -> None:
    from benchmarks._compare_report import direct_goals, multisample_goals
    from benchmarks._multisample import WayResult

    def run(tps: float, ttft: float, c: int = 1) -> Any:
        r = RequestResult(ok=True, ttft=ttft, last_token=ttft + 1, latency=ttft + 1, token_chunks=11, usage_tokens=11)
        s = summarize([r], 1.0, concurrency=c)
        s.output_throughput = tps
        return s

    vllm = [run(100, 0.1), run(400, 0.2, 4)]
    good = direct_goals("m", vllm, [run(99, 0.105), run(390, 0.21, 4)])
    assert [g.passed for g in good] == [True, True]
    slow = direct_goals("m", vllm, [run(99, 0.105), run(300, 0.3, 4)])
    assert [g.passed for g in slow] == [False, False] and "c=4" in slow[0].where and "c=4" in slow[1].where
    ms = [WayResult("ponder_majority_vote", "a", wall_s=1.0, output_tokens=300),
          WayResult("vllm_concurrent", "b", wall_s=1.0, output_tokens=200),
          WayResult("ponder_concurrent", "c", wall_s=1.0, output_tokens=250)]
    assert [g.passed for g in multisample_goals("m", 8, ms)] == [True, False]


def test_foreign_cpu_reading() -> None:
    from benchmarks._cpu import CpuMeter, Sample

    before, after = Sample(at=10.0, busy=100.0, mine=50.0), Sample(at=12.0, busy=104.0, mine=51.0)
    assert CpuMeter.foreign_cores(before, after) == 1.5  # 4 s busy, 1 s ours, over 2 s
    assert CpuMeter.foreign_cores(before, None) is None
    reading = CpuMeter().sample()
    assert reading is not None and reading.busy >= reading.mine >= 0


def test_repeats_combine_into_medians() -> None:
    from benchmarks._load_stats import median_summary

    runs = []
    for tps, ttft in ((100.0, 0.1), (50.0, 0.5), (90.0, 0.2)):
        s = summarize([RequestResult(ok=True, ttft=ttft, latency=1.0, token_chunks=4)], 1.0, concurrency=2)
        s.output_throughput = tps
        runs.append(s)
    m = median_summary(runs)
    assert m.output_throughput == 90.0 and math.isclose(m.ttft_ms["p50"], 200.0)
    assert (m.requests, m.ok, m.output_tokens) == (3, 3, 12) and m.extra["repeats"] == [100.0, 50.0, 90.0]


def test_plan_per_model_defaults_and_overrides() -> None:
    from benchmarks._plan import plan_for
    from benchmarks.compare_vllm import parser

    args = parser().parse_args([])
    assert plan_for("ponder-tiny", args).concurrency == (1, 4, 16)
    assert plan_for("smollm2", args).input_len == 64
    args = parser().parse_args(["--quick", "--concurrency", "2,3", "--ms-input-len", "1100"])
    tiny = plan_for("ponder-tiny", args)
    assert tiny.concurrency == (2, 3) and tiny.ms_input_len == 1100 and tiny.ms_rounds == 1
    with pytest.raises(ValueError):
        plan_for("ponder-tiny", parser().parse_args(["--ms-input-len", "4000"]))


def test_prefix_caching_off_for_both_servers(tmp_path: Path) -> None:
    """`compare_vllm --no-prefix-caching` turns the cache off in vLLM's server and in Ponder's engine alike."""
    import argparse

    from benchmarks._servers import EngineSettings
    from ponder.serve import cli

    (tmp_path / "config.json").write_text(json.dumps({"max_position_embeddings": 2048}))
    s = EngineSettings(folder=str(tmp_path), name="m", prefix_caching=False)
    vllm, ponder = s.vllm_command(1), s.ponder_command(2)
    assert "--no-enable-prefix-caching" in vllm and "--enable-prefix-caching" not in vllm
    parser = argparse.ArgumentParser()
    cli._serve_parser(parser.add_subparsers(dest="command"))
    off = cli.config_from_args(parser.parse_args(ponder[ponder.index("serve") :]))
    on = cli.config_from_args(parser.parse_args(["serve", "--model", "m"]))
    assert off.prefix_caching is False and on.prefix_caching is True
