"""The web page at `/`: static HTML, CSS and ES modules from api/web/, no build step.

The page is a client of the public /v1 API like any other (the key its user pastes, kept in the
browser), so nothing here is private to it. Its files are served with ETags (a browser revalidates and
gets 304 while they are unchanged) and a strict Content-Security-Policy: scripts and styles from this
origin only, no inline script, no plugins, no framing.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI, Request
from starlette.responses import Response
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

WEB_DIR = Path(__file__).parent / "web"
CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "media-src 'self' blob:",  # the job's audio, fetched with the key and played from a blob URL
        "connect-src 'self'",
        "base-uri 'none'",
        "form-action 'none'",
        "frame-ancestors 'none'",
    ]
)
PAGE_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-cache",  # revalidate with the ETag: a new release shows at once
}


class PageFiles(StaticFiles):
    """Starlette's static files (ETag, Last-Modified, 304) with the page's security headers."""

    async def get_response(self, path: str, scope: Scope) -> Response:
        response = await super().get_response(path, scope)
        response.headers.update(PAGE_HEADERS)
        return response


def mount_page(app: FastAPI) -> None:
    files = PageFiles(directory=WEB_DIR)
    app.mount("/web", files, name="web")

    @app.get("/", include_in_schema=False)
    async def page(request: Request) -> Response:
        return await files.get_response("index.html", request.scope)
