"""The search page: `/` and its static files (plain HTML, CSS and JS in `server/static`; no CDN, no build step).

The page needs no API key (the API calls it makes do: the key is typed once and sent as X-API-Key). A
Content-Security-Policy lets it load and connect to this origin only, so it can make no outside request.
"""
from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from starlette.responses import FileResponse
from starlette.staticfiles import StaticFiles

STATIC = Path(__file__).resolve().parent / "static"
PREFIX = "/static"
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; "
       "base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
HEADERS = {"Content-Security-Policy": CSP, "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer",
           "Cache-Control": "no-cache"}


class _StaticFiles(StaticFiles):
    """Static files with the page's security headers (re-validated on each load: `Cache-Control: no-cache`)."""

    def file_response(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        response = super().file_response(*args, **kwargs)
        response.headers.update(HEADERS)
        return response


def install(app: FastAPI) -> None:
    """Serve the page at `/` and its assets under /static (left out of the OpenAPI)."""
    app.mount(PREFIX, _StaticFiles(directory=str(STATIC)), name="page-static")

    @app.get("/", include_in_schema=False)
    async def page() -> FileResponse:
        return FileResponse(STATIC / "index.html", media_type="text/html; charset=utf-8", headers=HEADERS)
