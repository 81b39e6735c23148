"""Interactive docs that work offline: Swagger UI at /docs and ReDoc at /redoc.

FastAPI's own pages load their JavaScript and CSS from a CDN (and ReDoc's its fonts
from Google), so on a machine without internet they are blank. Here every asset comes
from the fastapi-offline package (its bundles of Swagger UI 5, Apache-2.0, and ReDoc 2,
MIT), served under ASSETS_URL; the pages name no other host. Like /openapi.json they are
public (service/api/middleware/auth.py leaves them open): they show only the API's shape.
"""

from __future__ import annotations

import base64
import hashlib
import re
from importlib.resources import files
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.openapi.docs import (
    get_redoc_html,
    get_swagger_ui_html,
    get_swagger_ui_oauth2_redirect_html,
)
from fastapi.staticfiles import StaticFiles
from starlette.responses import HTMLResponse

DOCS_URL = "/docs"
REDOC_URL = "/redoc"
OAUTH2_REDIRECT_URL = "/docs/oauth2-redirect"
ASSETS_URL = "/docs/assets"  # swagger-ui-bundle.js, swagger-ui.css, redoc.standalone.js
# Only this server, so the browser itself refuses anything the bundles would fetch from
# elsewhere (ReDoc's footer logo is an <img> from its CDN). The pages' own inline
# scripts are allowed by hash; ReDoc injects <style> elements and starts a blob: worker.
POLICY = (
    "default-src 'self'; script-src 'self'{hashes}; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; worker-src 'self' blob:; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'self'"
)
INLINE_SCRIPT = re.compile(r"<script>(.*?)</script>", re.DOTALL)


def assets_dir() -> Path:
    return Path(str(files("fastapi_offline") / "static"))


def confined(page: HTMLResponse) -> HTMLResponse:
    """`page` with a Content-Security-Policy that lets it load only from this server."""
    hashes = "".join(
        f" 'sha256-{base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()}'"
        for script in INLINE_SCRIPT.findall(bytes(page.body).decode())
    )
    page.headers["Content-Security-Policy"] = POLICY.format(hashes=hashes)
    return page


def install(app: FastAPI) -> None:
    """Needs an app made with docs_url=None and redoc_url=None (no CDN pages)."""
    openapi_url = app.openapi_url or "/openapi.json"
    app.mount(ASSETS_URL, StaticFiles(directory=assets_dir()), name="docs-assets")

    def urls(request: Request) -> tuple[str, str]:
        root = str(request.scope.get("root_path", "")).rstrip("/")
        return root + openapi_url, root + ASSETS_URL

    @app.get(DOCS_URL, include_in_schema=False)
    async def swagger_ui(request: Request) -> HTMLResponse:
        spec, assets = urls(request)
        page = get_swagger_ui_html(
            openapi_url=spec,
            title=f"{app.title} - Swagger UI",
            swagger_js_url=f"{assets}/swagger-ui-bundle.js",
            swagger_css_url=f"{assets}/swagger-ui.css",
            swagger_favicon_url=f"{assets}/favicon.png",
            oauth2_redirect_url=OAUTH2_REDIRECT_URL,
            swagger_ui_parameters=app.swagger_ui_parameters,
        )
        return confined(page)

    @app.get(OAUTH2_REDIRECT_URL, include_in_schema=False)
    async def swagger_ui_redirect() -> HTMLResponse:
        return confined(get_swagger_ui_oauth2_redirect_html())

    @app.get(REDOC_URL, include_in_schema=False)
    async def redoc(request: Request) -> HTMLResponse:
        spec, assets = urls(request)
        page = get_redoc_html(
            openapi_url=spec,
            title=f"{app.title} - ReDoc",
            redoc_js_url=f"{assets}/redoc.standalone.js",
            redoc_favicon_url=f"{assets}/favicon.png",
            with_google_fonts=False,
        )
        return confined(page)
