"""The playground: one static page (and its sibling ES modules and CSS) at `/` and `/playground`.

These routes need no API key: they only hand out the page, which asks for the
key and keeps it in the browser; every API call the page makes carries it.
A strict Content-Security-Policy keeps the page to its own origin: no CDN,
no inline script, and `connect-src 'self'` means the key can only travel to
this server. Assets are an allow-list of the files in `static/`, so no path
a client sends reaches the file system.
"""

from __future__ import annotations

from importlib import resources

from fastapi import APIRouter
from fastapi.responses import Response

from ponder.serve.errors import APIError

router = APIRouter(include_in_schema=False)

_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
}
_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; "
        "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}
PAGE = "playground.html"


def _assets() -> dict[str, tuple[bytes, str]]:
    """name -> (bytes, media type) for every servable file in `static/` (read once per process)."""
    out = {}
    for entry in resources.files("ponder.serve.static").iterdir():
        suffix = "." + entry.name.rpartition(".")[2]
        if entry.is_file() and suffix in _TYPES:
            out[entry.name] = (entry.read_bytes(), _TYPES[suffix])
    return out


_ASSETS = _assets()


def _file(name: str) -> Response:
    found = _ASSETS.get(name)
    if found is None:
        raise APIError(404, f"no playground file {name!r}", code="not_found")
    body, media_type = found
    return Response(body, media_type=media_type, headers=_HEADERS)


@router.api_route("/", methods=["GET", "HEAD"])
@router.api_route("/playground", methods=["GET", "HEAD"])
async def page() -> Response:
    return _file(PAGE)


@router.api_route("/playground/{name}", methods=["GET", "HEAD"])
async def asset(name: str) -> Response:
    return _file(name)
