"""The OpenAPI document as this server enforces it, and /docs served offline (Swagger UI from a PyPI package).

The schema's limits are the running server's (RKD_MAX_K, RKD_MAX_BATCH, RKD_MAX_TURNS, RKD_MAX_QUERY_BYTES as
a character ceiling; the byte limit itself and the request budgets answer 413, documented on each route), and
the {name} parameter lists the loaded indexes (with links from GET /v1/indexes for stateful clients).
"""
from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.openapi.utils import get_openapi
from starlette.responses import HTMLResponse
from starlette.staticfiles import StaticFiles

from .settings import ServerSettings

log = logging.getLogger("rkd.server")
ASSETS = "/docs/assets"


def _limit(schema: dict, model: str, prop: str, key: str, value: int, items: bool = False) -> None:
    """Lower `key` (maximum, maxItems, maxLength) of a property (of its items with `items`), also inside anyOf."""
    node = schema.get("components", {}).get("schemas", {}).get(model, {}).get("properties", {}).get(prop)
    for part in [node, *node.get("anyOf", [])] if node else []:
        target = part.get("items") if items else part
        if isinstance(target, dict) and (items or key in target):
            target[key] = min(target.get(key, value), value)


def _int_bounds(node: Any) -> None:
    """minimum / maximum written as 1000 rather than 1000.0 (pydantic floats them behind a before-validator)."""
    if isinstance(node, dict):
        for key in ("minimum", "maximum"):
            if isinstance(node.get(key), float) and node[key].is_integer():
                node[key] = int(node[key])
        for value in node.values():
            _int_bounds(value)
    elif isinstance(node, list):
        for value in node:
            _int_bounds(value)


def _index_names(schema: dict, names: list[str]) -> None:
    """The {name} path parameter lists the loaded indexes; GET /v1/indexes links to each operation taking one."""
    links = {}
    for ops in schema.get("paths", {}).values():
        for op in ops.values():
            for param in op.get("parameters", []):
                if param.get("in") == "path" and param.get("name") == "name":
                    param["schema"]["enum"] = names
                    links[op["operationId"]] = {"operationId": op["operationId"],
                                                "parameters": {"name": "$response.body#/indexes/0/name"}}
    index = schema.get("components", {}).get("schemas", {}).get("RewriteRequest", {}).get("properties", {}).get("index")
    for part in index.get("anyOf", []) if index else []:
        if part.get("type") == "string":
            part["enum"] = names
    listing = schema.get("paths", {}).get("/v1/indexes", {}).get("get", {}).get("responses", {}).get("200")
    if listing is not None and names:
        listing["links"] = links


def effective_schema(app: FastAPI, settings: ServerSettings) -> dict[str, Any]:
    """FastAPI's OpenAPI with the limits set to this server's settings and the loaded index names."""
    schema = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
    _int_bounds(schema)
    _index_names(schema, sorted(app.state.rkd.searchers))
    chars = settings.max_query_bytes  # a UTF-8 string has at least as many bytes as characters
    for model in ("SearchRequest", "BatchSearchRequest", "ConversationalSearchRequest", "DistillSearchRequest"):
        _limit(schema, model, "k", "maximum", settings.max_k)
    _limit(schema, "SearchRequest", "query", "maxLength", chars)
    _limit(schema, "BatchSearchRequest", "queries", "maxItems", settings.max_batch)
    _limit(schema, "BatchSearchRequest", "queries", "maxLength", chars, items=True)
    _limit(schema, "ConversationalSearchRequest", "utterance", "maxLength", chars)
    _limit(schema, "ConversationalSearchRequest", "history", "maxItems", settings.max_turns)
    _limit(schema, "Turn", "text", "maxLength", chars)
    for model in ("RewriteRequest", "DistillSearchRequest"):
        _limit(schema, model, "dialogue", "maxItems", settings.max_turns)
    return schema


def install(app: FastAPI, settings: ServerSettings) -> None:
    """Serve the effective OpenAPI at /openapi.json and (with RKD_DOCS) Swagger UI at /docs from local assets."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = effective_schema(app, settings)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    if not settings.docs:
        return
    try:
        from swagger_ui_bundle import swagger_ui_path
    except ImportError:
        log.warning("swagger-ui-bundle-v2 is not installed: /docs is off (the OpenAPI is at /openapi.json)")
        return
    app.mount(ASSETS, StaticFiles(directory=str(swagger_ui_path)), name="docs-assets")

    @app.get("/docs", include_in_schema=False)
    async def docs() -> HTMLResponse:
        return get_swagger_ui_html(openapi_url="/openapi.json", title=f"{app.title} - docs",
                                   swagger_js_url=f"{ASSETS}/swagger-ui-bundle.js",
                                   swagger_css_url=f"{ASSETS}/swagger-ui.css",
                                   swagger_favicon_url=f"{ASSETS}/favicon-32x32.png",
                                   swagger_ui_parameters={"validatorUrl": None})
