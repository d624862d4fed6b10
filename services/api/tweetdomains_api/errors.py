"""One error shape for every refusal: ``{"detail": "<a sentence>", "errors": [...]}``.

``errors`` (field, message, type) appears where a body failed validation; ``detail`` is then
a sentence naming the first field. Handlers for FastAPI's and Starlette's exceptions render it
with orjson; :func:`error_responses` documents it in OpenAPI.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from tweetdomains_api.schemas import ErrorResponse

log = logging.getLogger(__name__)

CLIENT_CLOSED = 499  # nginx's "client closed request": nobody reads it, the metrics do

DESCRIPTIONS = {
    401: "missing or wrong API key",
    408: "the request's headers or body took too long to arrive",
    413: "body over the size limit",
    422: "malformed body, a text over the limit or with nothing to classify; the message names the field",
    431: "request headers over the size limit",
    503: "no model loaded yet, or the server is shedding load / the request's deadline passed "
    "(then with Retry-After)",
}


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` for these error statuses, all of the one error shape."""
    return {status: {"model": ErrorResponse, "description": DESCRIPTIONS[status]} for status in statuses}


def error_body(detail: str, errors: list[dict[str, Any]] | None = None) -> bytes:
    body = {"detail": detail, "errors": errors} if errors else {"detail": detail}
    try:
        return orjson.dumps(body)
    except orjson.JSONEncodeError:  # a lone surrogate in a field name the client sent
        return json.dumps(body).encode()


def error_response(status: int, detail: str, headers: dict[str, str] | None = None) -> Response:
    return Response(error_body(detail), status, headers=headers, media_type="application/json")


def _field(loc: tuple[Any, ...] | list[Any]) -> str:
    parts = [str(p) for p in loc if p != "body"]
    out = ""
    for part in parts:
        out += f"[{part}]" if part.isdigit() and out else (f".{part}" if out else part)
    return out or "body"


async def validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    # The default echoes the input back (a 100,000-character text, say): keep field + reason.
    errors = [
        {"field": _field(e.get("loc", ())), "msg": str(e.get("msg", "")), "type": str(e.get("type", ""))}
        for e in exc.errors()
    ]
    first = errors[0] if errors else {"field": "body", "msg": "invalid"}
    if first["msg"].startswith("JSON decode error") or first.get("type") == "json_invalid":
        detail = f"the body is not valid JSON: {first['msg']}"
    else:
        detail = f"{first['field']}: {first['msg']}"
        if len(errors) > 1:
            detail += f" (and {len(errors) - 1} more)"
    return Response(error_body(detail, errors), 422, media_type="application/json")


async def http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    status, detail = exc.status_code, str(exc.detail)
    if status == 400 and "parsing the body" in detail:  # bytes that are not JSON (not even UTF-8)
        status, detail = 422, "the body is not valid JSON: there was an error parsing the body"
    return error_response(status, detail, dict(exc.headers) if exc.headers else None)


async def server_error(request: Request, exc: Exception) -> Response:
    log.exception("unhandled error on %s", request.url.path)
    return error_response(500, "internal server error")


def install(app: FastAPI) -> None:
    """Route every refusal through the one shape."""
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(Exception, server_error)
