"""What `compare_vllm.py` runs for each model: levels, lengths, repeats, multi-sample settings.

Defaults are chosen per model so that a default run of both bundled models takes
about 15 minutes on 2 CPU cores (`--quick`: about 3-5):

- ponder-tiny (1.8M parameters, float32) is fast: levels 1, 4, 16, three
  repeats of each level to average out other jobs on a shared machine.
- SmolLM2-135M in bfloat16 is slow on CPUs without AVX-512 BF16 (prefill about
  35 tokens/s, decode 15-25 tokens/s on the 2-core AVX2 machine it was tuned on),
  so it gets short prompts, levels 1, 4, 8, one repeat and one multi-sample
  round over a 1k-token prompt.

Explicit flags override these for every model.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, fields
from typing import Any


@dataclass(frozen=True)
class Plan:
    concurrency: tuple[int, ...] = (1, 4, 16)
    requests_per_stream: int = 4  # requests per level = max(min_requests, this * concurrency)
    min_requests: int = 8
    repeats: int = 3  # each level this many times per server, alternating order; medians reported
    duration: float = 60.0  # s per level and server, a safety bound
    input_len: int = 256
    max_tokens: int = 64
    temperature: float = 1.0
    samples: int = 8
    ms_input_len: int = 1280
    ms_max_tokens: int = 64
    ms_rounds: int = 2
    max_model_len: int = 2048
    kv_cache_gib: float = 1.0
    settle: float = 30.0  # s to wait (at most) for other jobs on the machine to go quiet before each run

    def __post_init__(self) -> None:
        if self.ms_input_len + self.ms_max_tokens + 64 > self.max_model_len:
            raise ValueError("--ms-input-len + --ms-max-tokens must fit in --max-model-len (with 64 to spare)")
        if not self.concurrency or min(self.concurrency) < 1 or self.samples < 2:
            raise ValueError("concurrency levels must be >= 1 and --samples >= 2")
        if min(self.ms_rounds, self.repeats, self.min_requests, self.requests_per_stream) < 1:
            raise ValueError("--ms-rounds, --repeats and the request counts must be >= 1")

    def requests(self, c: int) -> int:
        return max(self.min_requests, self.requests_per_stream * c)


MODEL_DEFAULTS: dict[str, dict[str, Any]] = {
    "smollm2": {"concurrency": (1, 4, 8), "requests_per_stream": 2, "min_requests": 4, "repeats": 1,
                "duration": 120.0, "input_len": 64, "max_tokens": 32, "ms_input_len": 1024, "ms_max_tokens": 32,
                "ms_rounds": 1},
}
QUICK: dict[str, dict[str, Any]] = {
    "*": {"concurrency": (1, 8), "requests_per_stream": 2, "min_requests": 4, "repeats": 1, "duration": 30.0,
          "input_len": 128, "max_tokens": 32, "ms_input_len": 1024, "ms_max_tokens": 32, "ms_rounds": 1},
    "smollm2": {"concurrency": (1, 4), "input_len": 32, "max_tokens": 16, "ms_input_len": 1024, "ms_max_tokens": 16,
                "duration": 60.0},
}
OVERRIDABLE = [f.name for f in fields(Plan)]


def plan_for(model: str, args: argparse.Namespace) -> Plan:
    """Defaults, then the model's defaults, then --quick's, then every flag given explicitly."""
    values: dict[str, Any] = dict(MODEL_DEFAULTS.get(model, {}))
    if args.quick:
        values.update(QUICK["*"])
        values.update(QUICK.get(model, {}))
    for name in OVERRIDABLE:
        given = getattr(args, name, None)
        if given is not None:
            values[name] = tuple(int(c) for c in given.split(",") if c.strip()) if name == "concurrency" else given
    return Plan(**values)


def add_arguments(p: argparse.ArgumentParser) -> None:
    d = Plan()
    p.add_argument("--concurrency", help=f"levels (default {','.join(map(str, d.concurrency))}; smollm2 1,4,8)")
    p.add_argument("--requests-per-stream", type=int, help="requests per level = this x concurrency (at least 8)")
    p.add_argument("--repeats", type=int, help=f"runs of each level per server, medians reported (default {d.repeats}"
                   "; smollm2 1)")
    p.add_argument("--duration", type=float, help="seconds per level and server (a safety bound)")
    p.add_argument("--input-len", type=int, help=f"direct prompt tokens (default {d.input_len}; smollm2 64)")
    p.add_argument("--max-tokens", type=int, help=f"direct output tokens, ignore_eos (default {d.max_tokens})")
    p.add_argument("--samples", type=int, help=f"N for the multi-sample part (default {d.samples})")
    p.add_argument("--ms-input-len", type=int, help=f"multi-sample prompt tokens (default {d.ms_input_len})")
    p.add_argument("--ms-max-tokens", type=int, help=f"multi-sample output tokens each (default {d.ms_max_tokens})")
    p.add_argument("--ms-rounds", type=int, help=f"multi-sample rounds (default {d.ms_rounds})")
    p.add_argument("--max-model-len", type=int, help=f"both servers (default {d.max_model_len})")
    p.add_argument("--kv-cache-gib", type=float, help=f"both servers (default {d.kv_cache_gib})")
    p.add_argument("--settle", type=float, help=f"max s to wait for other jobs to go quiet before each run "
                   f"(default {d.settle:g}; 0: do not wait)")
