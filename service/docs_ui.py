"""The API's browsable docs, offline: Swagger UI at /docs, its script and style served by the
service itself from the installed ``fastapi-offline`` package (the ``serve`` extra), never from
a CDN, so the docs render on a machine without internet. Swagger UI's online spec validator is
switched off for the same reason. No ReDoc: its page loads its logo from a CDN.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse
from starlette.staticfiles import StaticFiles

ASSETS = "/docs-assets"
MISSING = (
    "<!doctype html><title>floss serve: no docs</title><p>The browsable docs need the "
    "fastapi-offline package (pip install 'floss[serve]'); the schema is at "
    '<a href="/openapi.json">/openapi.json</a>.</p>'
)


def assets_folder() -> Path | None:
    """The folder of Swagger UI's files in the installed package (None: absent)."""
    try:
        import fastapi_offline
    except ImportError:
        return None
    folder = Path(fastapi_offline.__file__).resolve().parent / "static"
    return folder if (folder / "swagger-ui-bundle.js").is_file() else None


def install_docs(app: FastAPI) -> None:
    """/docs from local files; call on an app made with docs_url=redoc_url=None."""
    folder = assets_folder()
    if folder is not None:
        app.mount(ASSETS, StaticFiles(directory=folder), name="docs-assets")
    openapi = app.openapi_url or "/openapi.json"

    @app.get("/docs", include_in_schema=False)
    def swagger_ui() -> HTMLResponse:
        if folder is None:
            return HTMLResponse(MISSING, status_code=503)
        return get_swagger_ui_html(
            openapi_url=openapi,
            title=f"{app.title} - docs",
            swagger_js_url=f"{ASSETS}/swagger-ui-bundle.js",
            swagger_css_url=f"{ASSETS}/swagger-ui.css",
            swagger_favicon_url=f"{ASSETS}/favicon.png",
            oauth2_redirect_url=None,
            swagger_ui_parameters={"validatorUrl": None},  # no call to swagger.io's validator
        )
