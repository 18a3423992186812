"""Server settings and limits (a frozen dataclass; the CLI fills it from flags and env)."""

from __future__ import annotations

from dataclasses import dataclass, field

from ponder.engine.remote import RemoteConfig
from ponder.serve.admission import AdmissionConfig


@dataclass(frozen=True)
class Limits:
    """Caps on what one request may ask; every one is a `ponder serve` flag."""

    max_body_bytes: int = 4 << 20
    max_messages: int = 512
    max_n: int = 16
    max_tokens: int | None = None  # None: the model's context length
    default_max_tokens: int = 1024
    max_request_tokens: int = 65536  # compute budget cap: generated tokens across all sub-generations
    max_stop: int = 8
    max_samples: int = 64  # strategy samples (n of best_of_n / majority_vote)
    max_iterations: int = 256  # MCTS iterations
    max_depth: int = 32  # MCTS depth
    max_timeout: float = 600.0
    default_timeout: float = 600.0

    def __post_init__(self) -> None:
        for name in ("max_body_bytes", "max_messages", "max_n", "default_max_tokens", "max_request_tokens", "max_stop"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1")
        if self.max_tokens is not None and self.max_tokens < 1:
            raise ValueError("max_tokens must be >= 1")
        if not 0 < self.default_timeout <= self.max_timeout:
            raise ValueError("default_timeout must be in (0, max_timeout]")


@dataclass(frozen=True)
class ServerConfig:
    models: tuple[str, ...] = ("ponder-tiny",)
    host: str = "127.0.0.1"
    port: int = 8000
    api_keys: tuple[str, ...] = ()
    limits: Limits = field(default_factory=Limits)
    admission: AdmissionConfig = field(default_factory=AdmissionConfig)
    shutdown_grace: float = 30.0
    # Longer than the idle expiry of pooled clients (httpx and the OpenAI SDK: 5 s; proxies: 60 s),
    # so the client, not the server, closes an idle connection: uvicorn's 5 s default races them,
    # and a request sent as the server closes gets a connection reset.
    keep_alive_timeout: int = 75
    max_model_len: int | None = None
    kv_cache_gib: float = 1.0
    prefix_caching: bool = True  # vLLM's automatic prefix caching in the in-process engines
    enforce_eager: bool = True
    seed: int = 0
    metrics_port: int | None = None  # serve /metrics on its own port instead of the API port
    metrics_auth: bool = False  # /metrics needs the API key (when keys are set)
    remote: RemoteConfig | None = None  # --engine-url given: drive these vLLM servers instead of an in-process engine

    def __post_init__(self) -> None:
        if not self.models and self.remote is None:
            raise ValueError("serve at least one model")
        if any(not k for k in self.api_keys):
            raise ValueError("API keys must not be empty")
        if self.keep_alive_timeout <= 0:
            raise ValueError("keep_alive_timeout must be > 0")
