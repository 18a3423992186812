"""The HTTP routes: chat and text completions, models, strategies, health, version.

Each handler validates, prepares and hands the run to `runner.respond`; it
never looks at which strategy was asked for.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ValidationError

from ponder import __version__
from ponder.serve.auth import require_key
from ponder.serve.chunks import ChatFormat, CompletionFormat
from ponder.serve.errors import APIError, bad_request, from_validation_error
from ponder.serve.prepare import check_token_ids, flatten_messages, prepare
from ponder.serve.protocol import ChatCompletionRequest, CompletionRequest
from ponder.serve.runner import new_request_id, respond
from ponder.serve.state import ServerState
from ponder.strategies.registry import STRATEGIES

api = APIRouter(dependencies=[Depends(require_key)])
open_routes = APIRouter()


def _state(request: Request) -> ServerState:
    state: ServerState = request.app.state.ponder
    return state


def _check_serving(state: ServerState) -> None:
    if state.engine_dead:
        raise APIError(503, f"the inference engine is unavailable: {state.engine_dead}", code="engine_dead")
    if state.draining:
        raise APIError(503, "the server is shutting down", code="draining", headers={"Retry-After": "5"})


async def _parse(request: Request, model: type[BaseModel], state: ServerState) -> Any:
    limit = state.config.limits.max_body_bytes
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise APIError(413, f"the request body exceeds {limit} bytes", code="body_too_large")
    body = bytearray()
    async for part in request.stream():
        body += part
        if len(body) > limit:
            raise APIError(413, f"the request body exceeds {limit} bytes", code="body_too_large")
    if not body:
        raise bad_request("the request body is empty; send a JSON object", code="invalid_json")
    try:
        return model.model_validate_json(bytes(body))
    except ValidationError as e:
        raise from_validation_error(e) from None


@api.post(
    "/v1/chat/completions",
    openapi_extra={
        "requestBody": {
            "content": {"application/json": {"schema": ChatCompletionRequest.model_json_schema()}},
            "required": True,
        }
    },
)
async def chat_completions(request: Request) -> Any:
    state = _state(request)
    req: ChatCompletionRequest = await _parse(request, ChatCompletionRequest, state)
    _check_serving(state)
    model, alias = state.lookup(req.model)
    request.state.labels = (model.name, "none")
    messages = flatten_messages(req.messages, state.config.limits)
    try:
        prompt_ids = (
            await asyncio.to_thread(model.engine.render_chat, messages)
            if len(messages) > 8
            else model.engine.render_chat(messages)
        )
    except Exception as e:  # template errors (e.g. roles a template rejects) are the client's
        raise bad_request(
            f"the messages cannot be rendered with this model's chat template: {e}", param="messages"
        ) from None
    prep = prepare(state, req, prompt_ids, model, alias, messages)
    request.state.labels = (model.name, prep.spec.name)
    rid = new_request_id("chatcmpl")
    fmt = ChatFormat(rid, req.model, int(time.time()), req.n, prep.logprobs)
    return await respond(request, state, prep, fmt, rid)


@api.post(
    "/v1/completions",
    openapi_extra={
        "requestBody": {
            "content": {"application/json": {"schema": CompletionRequest.model_json_schema()}},
            "required": True,
        }
    },
)
async def completions(request: Request) -> Any:
    state = _state(request)
    req: CompletionRequest = await _parse(request, CompletionRequest, state)
    _check_serving(state)
    model, alias = state.lookup(req.model)
    request.state.labels = (model.name, "none")
    prompt: Any = req.prompt
    if isinstance(prompt, list) and len(prompt) == 1 and not isinstance(prompt[0], int):
        prompt = prompt[0]  # a batch of one
    if isinstance(prompt, str):
        prompt_ids = model.engine.tokenizer.encode_prompt(prompt)
    elif prompt and all(isinstance(t, int) for t in prompt):
        prompt_ids = list(prompt)
        check_token_ids(prompt_ids, len(model.engine.tokenizer.hf), "prompt")
    else:
        raise bad_request(
            "prompt must be one string or one list of token ids (batches are not supported)", param="prompt"
        )
    if not prompt_ids:
        raise bad_request("prompt must not be empty", param="prompt")
    prep = prepare(state, req, prompt_ids, model, alias)
    request.state.labels = (model.name, prep.spec.name)
    rid = new_request_id("cmpl")
    fmt = CompletionFormat(rid, req.model, int(time.time()), req.n, prep.logprobs)
    return await respond(request, state, prep, fmt, rid)


@api.get("/v1/models")
async def list_models(request: Request) -> dict[str, Any]:
    state = _state(request)
    data = []
    for model in state.models.values():
        data.append(
            {
                "id": model.name,
                "object": "model",
                "created": model.created,
                "owned_by": "ponder",
                "root": model.folder,
                "max_model_len": model.engine.max_model_len,
            }
        )
        for name in STRATEGIES:
            if name != "direct":
                data.append(
                    {
                        "id": f"{model.name}@{name}",
                        "object": "model",
                        "created": model.created,
                        "owned_by": "ponder",
                        "root": model.folder,
                        "parent": model.name,
                        "strategy": name,
                        "max_model_len": model.engine.max_model_len,
                    }
                )
    return {"object": "list", "data": data}


@api.get("/v1/strategies")
async def list_strategies() -> dict[str, Any]:
    import dataclasses

    out = []
    for name, spec in STRATEGIES.items():
        params = []
        for f in dataclasses.fields(spec.params):
            default = f.default if f.default is not dataclasses.MISSING else None
            params.append({"name": f.name, "type": str(f.type), "default": default})
        out.append({"name": name, "description": spec.description, "parameters": params})
    return {"object": "list", "data": out}


@open_routes.get("/health")
async def health(request: Request) -> JSONResponse:
    state = _state(request)
    models = {}
    status = "draining" if state.draining else "ok"
    for name, model in state.models.items():
        try:
            await model.engine.check_health()
            models[name] = {"status": "ok", "running": model.engine.num_running()}
        except Exception as e:  # noqa: BLE001 - any failure means unhealthy
            models[name] = {"status": "dead", "error": str(e)}
            state.engine_dead = state.engine_dead or str(e)
    if state.engine_dead:
        status = "dead"
    code = 200 if status == "ok" else 503
    adm = state.admission
    body = {
        "status": status,
        "models": models,
        "inflight": adm.inflight,
        "queued": adm.queued,
        "peak_inflight": adm.peak_inflight,
        "tasks": len(asyncio.all_tasks()),
    }
    return JSONResponse(body, status_code=code)


@api.get("/version")
async def version() -> dict[str, str]:
    try:
        import vllm

        vllm_version = str(vllm.__version__)
    except Exception:  # noqa: BLE001
        vllm_version = "unavailable"
    return {"version": __version__, "vllm": vllm_version}
