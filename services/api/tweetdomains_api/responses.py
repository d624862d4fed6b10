"""JSON responses rendered with orjson (FastAPI's ``ORJSONResponse`` is deprecated)."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.responses import JSONResponse


class OrjsonResponse(JSONResponse):
    """``application/json`` from orjson: several times faster than ``json.dumps`` on answers."""

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)
