"""The page (``/``), its favicon, and the API docs (``/docs``, ``/redoc``) from local assets.

Swagger UI's and ReDoc's scripts come from the ``fastapi-offline`` package, served by the app:
the docs work without reaching a CDN.
"""

from __future__ import annotations

from functools import cache
from importlib import resources
from pathlib import Path

from fastapi import APIRouter, FastAPI
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse, Response
from starlette.staticfiles import StaticFiles

router = APIRouter(include_in_schema=False)
DOCS_ASSETS = "/static/docs"


@cache
def _static(name: str) -> bytes:
    return resources.files("tweetdomains_api").joinpath(f"static/{name}").read_bytes()


def docs_assets_dir() -> Path:
    """Swagger UI and ReDoc files as the fastapi-offline package ships them."""
    import fastapi_offline

    return Path(fastapi_offline.__file__).parent / "static"


def mount_assets(app: FastAPI) -> None:
    app.mount(DOCS_ASSETS, StaticFiles(directory=docs_assets_dir()), name="docs-assets")


@router.get("/")
async def page() -> HTMLResponse:
    return HTMLResponse(_static("index.html"))


@router.get("/favicon.svg")
@router.get("/favicon.ico")
async def favicon() -> Response:
    return Response(
        _static("favicon.svg"), media_type="image/svg+xml", headers={"Cache-Control": "max-age=86400"}
    )


@router.get("/docs")
async def swagger_ui() -> HTMLResponse:
    return get_swagger_ui_html(
        openapi_url="/openapi.json",
        title="tweetdomains - Swagger UI",
        swagger_js_url=f"{DOCS_ASSETS}/swagger-ui-bundle.js",
        swagger_css_url=f"{DOCS_ASSETS}/swagger-ui.css",
        swagger_favicon_url="/favicon.svg",
    )


@router.get("/redoc")
async def redoc() -> HTMLResponse:
    return get_redoc_html(
        openapi_url="/openapi.json",
        title="tweetdomains - ReDoc",
        redoc_js_url=f"{DOCS_ASSETS}/redoc.standalone.js",
        redoc_favicon_url="/favicon.svg",
        with_google_fonts=False,
    )
