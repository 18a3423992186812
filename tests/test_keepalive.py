"""Idle keep-alive connections: the server keeps them longer than pooled clients do.

httpx (and so the OpenAI SDK) drops a pooled connection after 5 s idle; uvicorn's default
keep-alive is also 5 s. With equal timeouts, a request sent on a connection at the instant the
server closes it gets a connection reset (`httpx.ReadError`). Ponder's server waits
`--keep-alive-timeout` (75 s), and its own clients of vLLM expire idle connections at 4 s, below
vLLM's 5 s.
"""

from __future__ import annotations

import select
import socket
import time
from typing import Any
from urllib.parse import urlsplit

from ponder.engine.replica import ClientSettings
from ponder.serve import cli
from tests.test_deploy import _serve_parser

IDLE = 6.0  # past uvicorn's default keep-alive (5 s)


def get_health(sock: socket.socket, host: str) -> bytes:
    sock.sendall(f"GET /health HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, f"the server closed the connection; got {data!r}"
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = next(
        int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")
    )
    while len(body) < length:
        body += sock.recv(65536)
    return head.split(b"\r\n")[0]


def test_an_idle_connection_outlives_a_client_pool_expiry(tiny_server: Any) -> None:
    url = urlsplit(tiny_server.url)
    with socket.create_connection((url.hostname, url.port), timeout=10) as sock:
        assert get_health(sock, url.netloc) == b"HTTP/1.1 200 OK"
        time.sleep(IDLE)
        readable, _, _ = select.select([sock], [], [], 0)
        assert not readable, "the server closed an idle connection before clients expire it"
        assert get_health(sock, url.netloc) == b"HTTP/1.1 200 OK"  # same socket, second request


def test_keep_alive_flags() -> None:
    parser = _serve_parser()
    default = cli.config_from_args(parser.parse_args(["serve"]))
    assert default.keep_alive_timeout == 75
    assert cli.config_from_args(parser.parse_args(["serve", "--keep-alive-timeout", "20"])).keep_alive_timeout == 20
    remote = cli.config_from_args(parser.parse_args(["serve", "--engine-url", "http://x:1", "--engine-keepalive", "2"]))
    assert remote.remote is not None and remote.remote.client.keepalive_expiry == 2


async def test_the_replica_client_expires_idle_connections_before_vllm_does() -> None:
    client = ClientSettings().client("http://127.0.0.1:1")
    try:
        pool = client._transport._pool  # type: ignore[attr-defined]
        assert 0 < pool._keepalive_expiry < 5  # vLLM's VLLM_HTTP_TIMEOUT_KEEP_ALIVE default
    finally:
        await client.aclose()
