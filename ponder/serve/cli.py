"""`ponder` command line: serve, prepare-models, train-tiny, eval-tiny, train-prm, bench.

argparse lives only here; the training and benchmark tools parse their own arguments.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from ponder.serve.admission import AdmissionConfig
from ponder.serve.config import Limits, ServerConfig

if TYPE_CHECKING:
    from ponder.engine.remote import RemoteConfig

# subcommands that hand their arguments to a module's main(argv)
TOOLS = {
    "train-tiny": "ponder.models.train_tiny",
    "eval-tiny": "ponder.models.eval_tiny",
    "train-prm": "ponder.rewards.train_prm",
}


def _keys(args: argparse.Namespace) -> tuple[str, ...]:
    keys = list(args.api_key or [])
    env = os.environ.get("PONDER_API_KEY")
    if env:
        keys.extend(k.strip() for k in env.split(",") if k.strip())
    if args.api_key_file:
        lines = Path(args.api_key_file).read_text().splitlines()
        keys.extend(line.strip() for line in lines if line.strip() and not line.startswith("#"))
    return tuple(dict.fromkeys(keys))


def _serve_parser(sub: argparse._SubParsersAction) -> None:
    d = Limits()
    p = sub.add_parser("serve", help="start the OpenAI-compatible server")
    p.add_argument("--model", action="append", help="ponder-tiny, smollm2, a model folder, or NAME=FOLDER (repeatable)")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument(
        "--api-key", action="append", help="accepted API key (repeatable; also $PONDER_API_KEY, comma-separated)"
    )
    p.add_argument("--api-key-file", help="file with one API key per line")
    p.add_argument("--max-model-len", type=int, default=None, help="context length (default: the model's)")
    p.add_argument("--kv-cache-gib", type=float, default=1.0, help="KV-cache size per engine, GiB")
    p.add_argument(
        "--no-prefix-caching",
        dest="prefix_caching",
        action="store_false",
        help="turn vLLM's automatic prefix caching off (on by default)",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--log-level", default="info")
    p.add_argument("--metrics-port", type=int, default=None, help="serve /metrics on this port instead of the API port")
    p.add_argument("--metrics-auth", action="store_true", help="/metrics needs the API key (when keys are set)")
    g = p.add_argument_group("limits")
    g.add_argument("--max-body-bytes", type=int, default=d.max_body_bytes)
    g.add_argument("--max-messages", type=int, default=d.max_messages)
    g.add_argument("--max-n", type=int, default=d.max_n, help="largest `n` (choices) a request may ask")
    g.add_argument("--max-tokens-limit", type=int, default=None, help="largest max_tokens (default: context length)")
    g.add_argument("--default-max-tokens", type=int, default=d.default_max_tokens)
    g.add_argument(
        "--max-request-tokens",
        type=int,
        default=d.max_request_tokens,
        help="compute budget cap: generated tokens across all of a request's sub-generations",
    )
    g.add_argument("--max-stop", type=int, default=d.max_stop)
    g.add_argument("--max-samples", type=int, default=d.max_samples, help="largest strategy sample count")
    g.add_argument("--max-iterations", type=int, default=d.max_iterations, help="largest MCTS iteration count")
    g.add_argument("--max-depth", type=int, default=d.max_depth, help="largest MCTS depth")
    g.add_argument("--max-timeout", type=float, default=d.max_timeout, help="largest per-request timeout, s")
    g.add_argument("--default-timeout", type=float, default=d.default_timeout, help="per-request timeout, s")
    a = AdmissionConfig()
    g = p.add_argument_group("admission and per-key limits")
    g.add_argument("--max-inflight", type=int, default=a.max_inflight, help="requests running at once")
    g.add_argument("--max-queue", type=int, default=a.max_queue, help="requests waiting for a place")
    g.add_argument(
        "--max-queue-tokens",
        type=int,
        default=a.max_queue_tokens,
        help="expected generated tokens of all waiting requests",
    )
    g.add_argument("--queue-timeout", type=float, default=a.queue_timeout, help="longest wait for a place, s")
    g.add_argument("--key-max-concurrency", type=int, default=None, help="requests at once per API key")
    g.add_argument("--key-tpm", type=int, default=None, help="tokens per minute per API key (prompt + generated)")
    g.add_argument("--shutdown-grace", type=float, default=30.0, help="seconds in-flight requests get on SIGTERM")
    g.add_argument(
        "--keep-alive-timeout",
        type=int,
        default=ServerConfig.keep_alive_timeout,
        help="close a client connection idle this long, s (keep it above clients' and proxies' idle timeouts)",
    )
    _remote_parser(p)


def _remote_parser(p: argparse.ArgumentParser) -> None:
    from ponder.engine.remote import RemoteConfig
    from ponder.engine.replica import ClientSettings
    from ponder.engine.routing import RoutingConfig

    rd, cd, td = RemoteConfig(urls=("-",)), ClientSettings(), RoutingConfig()
    g = p.add_argument_group("remote vLLM replicas (instead of an in-process engine)")
    g.add_argument(
        "--engine-url",
        action="append",
        default=[],
        help="a vLLM OpenAI server root, e.g. http://10.0.0.5:8000 (repeatable); "
        "dns+http://NAME:PORT stands for every address NAME resolves to (a headless Service)",
    )
    g.add_argument("--engine-urls-file", help="file with one replica URL per line (# comments)")
    g.add_argument("--engine-model", help="model name the replicas serve (default: the first /v1/models entry)")
    g.add_argument("--engine-pool-size", type=int, default=cd.pool_size, help="HTTP connections per replica")
    g.add_argument(
        "--engine-keepalive",
        type=float,
        default=cd.keepalive_expiry,
        help="drop a replica connection idle this long, s (keep it below the replicas' keep-alive, vLLM's is 5 s)",
    )
    g.add_argument("--engine-connect-timeout", type=float, default=cd.connect_timeout, help="s")
    g.add_argument(
        "--engine-read-timeout",
        type=float,
        default=cd.read_timeout,
        help="longest silence inside a replica's stream, s",
    )
    g.add_argument(
        "--engine-retries",
        type=int,
        default=rd.retries,
        help="other replicas tried when one fails before the first token",
    )
    g.add_argument("--engine-health-interval", type=float, default=rd.health_interval, help="s between /health checks")
    g.add_argument(
        "--engine-health-failures",
        type=int,
        default=rd.health_failures,
        help="failed checks in a row that take a replica out",
    )
    g.add_argument(
        "--engine-startup-timeout", type=float, default=rd.startup_timeout, help="wait this long for a first replica, s"
    )
    g.add_argument("--no-prefix-affinity", action="store_true", help="route by load only")
    g.add_argument(
        "--affinity-slack",
        type=int,
        default=td.slack,
        help="affinity yields when its replica has this many more requests in flight than the least loaded",
    )


def _remote(args: argparse.Namespace) -> RemoteConfig | None:
    from ponder.engine.remote import RemoteConfig
    from ponder.engine.replica import ClientSettings
    from ponder.engine.routing import RoutingConfig

    urls = list(args.engine_url or [])
    if args.engine_urls_file:
        lines = Path(args.engine_urls_file).read_text().splitlines()
        urls += [s.strip() for s in lines if s.strip() and not s.lstrip().startswith("#")]
    if not urls:
        return None
    return RemoteConfig(
        urls=tuple(dict.fromkeys(urls)),
        served_model=args.engine_model,
        max_model_len=args.max_model_len,
        client=ClientSettings(
            pool_size=args.engine_pool_size,
            keepalive_expiry=args.engine_keepalive,
            connect_timeout=args.engine_connect_timeout,
            read_timeout=args.engine_read_timeout,
            api_key=os.environ.get("PONDER_ENGINE_API_KEY") or None,
        ),
        retries=args.engine_retries,
        health_interval=args.engine_health_interval,
        health_failures=args.engine_health_failures,
        startup_timeout=args.engine_startup_timeout,
        routing=RoutingConfig(affinity=not args.no_prefix_affinity, slack=args.affinity_slack),
    )


def config_from_args(args: argparse.Namespace) -> ServerConfig:
    limits = Limits(
        max_body_bytes=args.max_body_bytes,
        max_messages=args.max_messages,
        max_n=args.max_n,
        max_tokens=args.max_tokens_limit,
        default_max_tokens=args.default_max_tokens,
        max_request_tokens=args.max_request_tokens,
        max_stop=args.max_stop,
        max_samples=args.max_samples,
        max_iterations=args.max_iterations,
        max_depth=args.max_depth,
        max_timeout=args.max_timeout,
        default_timeout=min(args.default_timeout, args.max_timeout),
    )
    admission = AdmissionConfig(
        max_inflight=args.max_inflight,
        max_queue=args.max_queue,
        max_queue_tokens=args.max_queue_tokens,
        queue_timeout=args.queue_timeout,
        key_concurrency=args.key_max_concurrency,
        key_tpm=args.key_tpm,
    )
    remote = _remote(args)
    return ServerConfig(
        models=tuple(args.model or ([] if remote else ["ponder-tiny"])),
        remote=remote,
        admission=admission,
        shutdown_grace=args.shutdown_grace,
        keep_alive_timeout=args.keep_alive_timeout,
        host=args.host,
        port=args.port,
        api_keys=_keys(args),
        limits=limits,
        max_model_len=args.max_model_len,
        kv_cache_gib=args.kv_cache_gib,
        prefix_caching=args.prefix_caching,
        seed=args.seed,
        metrics_port=args.metrics_port,
        metrics_auth=args.metrics_auth,
    )


def serve(args: argparse.Namespace) -> int:
    import uvicorn

    from ponder.serve.app import create_app, load_models, load_remote
    from ponder.serve.lifecycle import PonderServer

    config = config_from_args(args)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    app = create_app(config, load_remote if config.remote else load_models)
    server = PonderServer(
        uvicorn.Config(
            app,
            host=config.host,
            port=config.port,
            log_level=args.log_level,
            timeout_graceful_shutdown=10,
            timeout_keep_alive=config.keep_alive_timeout,
        ),
        app.state.ponder,
        grace=config.shutdown_grace,
    )
    server.run()
    return server.exit_code or (0 if server.started else 1)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="ponder", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    _serve_parser(sub)
    sub.add_parser("prepare-models", help="convert SmolLM2 into the cache and check ponder-tiny")
    for name, module in TOOLS.items():
        sub.add_parser(name, help=f"see python -m {module} --help", add_help=False)
    sub.add_parser(
        "bench", help="run a benchmark: ponder bench {load,scaling,kernels,compare_vllm,affinity} ...", add_help=False
    )
    args, rest = parser.parse_known_args(argv)
    if args.command == "serve":
        if rest:
            parser.error(f"unrecognised arguments: {' '.join(rest)}")
        return serve(args)
    if args.command == "prepare-models":
        from ponder.models.catalog import prepare_all

        for source in prepare_all():
            print(f"{source.name}: {source.folder}")
        return 0
    if args.command in TOOLS:
        return int(importlib.import_module(TOOLS[args.command]).main(rest))
    if args.command == "bench":
        if not rest or rest[0].startswith("-"):
            parser.error("ponder bench NAME [args]: NAME is one of load, scaling, kernels, compare_vllm, affinity")
        repo = Path(__file__).resolve().parents[2]
        if (repo / "benchmarks").is_dir() and str(repo) not in sys.path:
            sys.path.insert(0, str(repo))  # benchmarks/ lives beside the package in a checkout
        return int(importlib.import_module(f"benchmarks.{rest[0].replace('-', '_')}").main(rest[1:]))
    parser.error(f"unknown command {args.command}")
    return 2


if __name__ == "__main__":
    sys.exit(main())
