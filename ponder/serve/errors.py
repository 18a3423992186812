"""Errors in OpenAI's shape: `{"error": {"message", "type", "param", "code"}}` with the right status."""

from __future__ import annotations

from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse
from pydantic import ValidationError

_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    404: "not_found_error",
    408: "timeout_error",
    413: "invalid_request_error",
    429: "rate_limit_error",
    500: "server_error",
    503: "service_unavailable",
}


class APIError(Exception):
    def __init__(
        self,
        status: int,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.param = param
        self.code = code
        self.headers = headers

    def body(self) -> dict[str, Any]:
        return {
            "error": {
                "message": self.message,
                "type": _TYPES.get(self.status, "invalid_request_error" if self.status < 500 else "server_error"),
                "param": self.param,
                "code": self.code,
            }
        }


def bad_request(message: str, param: str | None = None, code: str | None = None) -> APIError:
    return APIError(400, message, param=param, code=code)


def from_validation_error(e: ValidationError) -> APIError:
    """The first problem of a pydantic error, naming the field (`messages.0.role`)."""
    err = e.errors(include_url=False)[0]
    if err["type"] == "json_invalid":
        return bad_request(
            f"the request body is not valid JSON: {err.get('ctx', {}).get('error', err['msg'])}", code="invalid_json"
        )
    loc = [str(p) for p in err["loc"] if not str(p).startswith(("function-", "json-or-python"))]
    # union members show up as loc parts like 'str' / 'list[...]': keep the field path only
    loc = [
        p
        for p in loc
        if not (p in {"str", "int", "float", "bool", "dict[str,any]"} or p.startswith(("list[", "constrained-")))
    ]
    param = ".".join(loc) or None
    message = f"{param}: {err['msg']}" if param else err["msg"]
    code = "missing_required_parameter" if err["type"] == "missing" else "invalid_value"
    return bad_request(message, param=param, code=code)


def error_response(e: APIError) -> JSONResponse:
    return JSONResponse(e.body(), status_code=e.status, headers=e.headers)


async def handle_api_error(_: Request, e: Exception) -> JSONResponse:
    assert isinstance(e, APIError)
    return error_response(e)
