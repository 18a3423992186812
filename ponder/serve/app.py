"""The FastAPI application: engines started in the lifespan, routes, OpenAI-shaped errors."""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, start_http_server
from starlette.exceptions import HTTPException as StarletteHTTPException

from ponder import __version__
from ponder.serve.auth import require_key
from ponder.serve.config import ServerConfig
from ponder.serve.errors import APIError, error_response
from ponder.serve.playground import router as playground
from ponder.serve.routes import api, open_routes
from ponder.serve.runner import outcome_of
from ponder.serve.state import ServedModel, ServerState
from ponder.strategies.registry import load_builtin

log = logging.getLogger("ponder.serve")

ModelLoader = Callable[[ServerState], list[ServedModel]]


def load_models(state: ServerState) -> list[ServedModel]:
    """Resolve every `--model` and start a vLLM engine for each (about 30 s each on a CPU)."""
    from ponder.engine.vllm_local import VllmEngine, VllmEngineConfig
    from ponder.models.catalog import resolve

    config = state.config
    served = []
    for spec in config.models:
        source = resolve(spec)
        start = time.monotonic()
        log.info("starting vLLM engine for %s (%s)", source.name, source.folder)
        engine = VllmEngine.start(
            VllmEngineConfig(
                folder=source.folder,
                name=source.name,
                max_model_len=config.max_model_len,
                dtype=source.dtype,
                kv_cache_gib=config.kv_cache_gib,
                enforce_eager=config.enforce_eager,
                prefix_caching=config.prefix_caching,
                seed=config.seed,
            )
        )
        state.metrics.vllm.capture()
        log.info("engine for %s ready in %.1f s", source.name, time.monotonic() - start)
        served.append(
            ServedModel(source.name, engine, source.folder, defaults=ServedModel.generation_defaults(source.folder))
        )
    return served


def load_remote(state: ServerState) -> list[ServedModel]:
    """One RemoteEngine over every --engine-url; `--model` (at most one) names its tokenizer/scorer folder."""
    import dataclasses

    from ponder.engine.remote import RemoteEngine
    from ponder.models.catalog import resolve

    config = state.config
    assert config.remote is not None
    remote = config.remote
    if len(config.models) > 1:
        raise ValueError("with --engine-url, give at most one --model: the model the replicas serve")
    if config.models:
        source = resolve(config.models[0])
        remote = dataclasses.replace(remote, name=source.name, folder=source.folder)
    engine = RemoteEngine.start(remote)  # blocks until a replica answers
    log.info("remote engine for %s over %d replica(s)", engine.model, len(engine.pool.replicas()))
    folder = remote.folder or ""
    defaults = ServedModel.generation_defaults(folder) if folder else {}
    return [ServedModel(engine.model, engine, folder, defaults=defaults)]


def create_app(config: ServerConfig, loader: ModelLoader = load_models) -> FastAPI:
    load_builtin()
    state = ServerState(config)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        try:
            for model in loader(state):
                state.add(model)
            if config.metrics_port is not None:
                start_http_server(config.metrics_port, addr=config.host, registry=state.metrics.registry)
            yield
        finally:
            for model in state.models.values():
                with contextlib.suppress(Exception):
                    await model.engine.shutdown()

    app = FastAPI(
        title="Ponder",
        version=__version__,
        lifespan=lifespan,
        description="OpenAI-compatible server over vLLM with per-request test-time strategies.",
    )
    app.state.ponder = state
    app.include_router(open_routes)
    app.include_router(playground)
    app.include_router(api)
    if config.metrics_port is None:
        deps = [Depends(require_key)] if config.metrics_auth else []
        app.add_api_route("/metrics", _metrics_endpoint, methods=["GET"], dependencies=deps, include_in_schema=False)

    @app.exception_handler(APIError)
    async def _api_error(request: Request, e: APIError) -> JSONResponse:
        if request.url.path.startswith("/v1/") and request.method == "POST":
            model, strategy = getattr(request.state, "labels", ("unknown", "none"))
            state.metrics.requests.labels(model, strategy, outcome_of(e)).inc()
        return error_response(e)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_: Request, e: StarletteHTTPException) -> JSONResponse:
        return error_response(
            APIError(
                e.status_code,
                str(e.detail),
                code="not_found" if e.status_code == 404 else None,
                headers=getattr(e, "headers", None),
            )
        )

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, e: RequestValidationError) -> JSONResponse:
        return error_response(APIError(400, str(e.errors()[0].get("msg", "invalid request"))))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, e: Exception) -> JSONResponse:
        log.exception("unhandled error on %s", request.url.path)
        return error_response(APIError(500, "internal server error", code="internal_error"))

    return app


async def _metrics_endpoint(request: Request) -> Response:
    state: ServerState = request.app.state.ponder
    return Response(state.metrics.render(), media_type=CONTENT_TYPE_LATEST)


def app_state(app: Any) -> ServerState:
    state: ServerState = app.state.ponder
    return state
