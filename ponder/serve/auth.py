"""API keys: `Authorization: Bearer KEY` checked in constant time against every configured key."""

from __future__ import annotations

import hmac

from fastapi import Request

from ponder.serve.admission import key_id
from ponder.serve.errors import APIError


def key_matches(given: str, keys: tuple[str, ...]) -> bool:
    ok = False
    for key in keys:  # compare against all keys so timing does not reveal which one matched
        ok |= hmac.compare_digest(given.encode(), key.encode())
    return ok


async def require_key(request: Request) -> None:
    keys: tuple[str, ...] = request.app.state.ponder.config.api_keys
    if not keys:
        request.state.key_id = "anonymous"
        return
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise APIError(401, "Missing API key: send 'Authorization: Bearer <key>'", code="missing_api_key")
    if not key_matches(token.strip(), keys):
        raise APIError(401, "Incorrect API key provided", code="invalid_api_key")
    request.state.key_id = key_id(token.strip())
