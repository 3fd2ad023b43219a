"""The OpenAPI document says every answer: each error status an operation can give, with the
one error body all of them share ({"detail": message} or FastAPI's list of field errors).

Which operation gives which status follows from what it does, so the rules are few:
every /api operation answers 401 without the token; one with a body answers 400 (a body that
is not JSON), 413 (above the body limit) and 422; one that names a run or claim answers 404;
cancelling, deleting and appending frames answer 409 when the run's state forbids it; starting
a run answers 429 when the queue is full.
"""

from __future__ import annotations

import re
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from normcore import config

# RunConfig's named fields: the names its validators know, as the document's enums
NAMED = {
    "model": config.MODELS,
    "activation": config.ACTIVATIONS,
    "norm": config.NORM_NAMES,
    "placement": config.PLACEMENTS,
    "init": config.INITS,
    "cell": config.CELLS,
    "dataset": config.DATASETS,
    "batch_order": config.BATCH_ORDERS,
    "optimizer": config.OPTIMIZERS,
    "device": config.DEVICES,
}

ERROR = {
    "title": "Error",
    "type": "object",
    "required": ["detail"],
    "properties": {
        "detail": {
            "anyOf": [
                {"type": "string", "description": "what was wrong, naming the field and value"},
                {"type": "array", "items": {"$ref": "#/components/schemas/ValidationError"}},
            ]
        }
    },
}
ERROR_REF = "#/components/schemas/Error"
REASONS = {
    400: "the body is not valid JSON",
    401: "no token, or not the server's (WWW-Authenticate: Bearer)",
    404: "no such run, claim or route",
    409: "the run's state does not allow it",
    413: "the body is above the server's limit (NORMSCOPE_MAX_BODY_BYTES)",
    422: "a field's value is not accepted",
    429: "the run queue is full (Retry-After says when to retry)",
}
CONFLICTS = {
    ("post", "/api/runs/{run_id}/cancel"),
    ("delete", "/api/runs/{run_id}"),
    ("post", "/api/runs/{run_id}/frames"),
    ("post", "/api/claims/{claim_id}/run"),
}
QUEUED = {("post", "/api/runs"), ("post", "/api/claims/{claim_id}/run")}


def statuses(method: str, path: str, operation: dict[str, Any]) -> set[int]:
    """The error statuses of one operation (the module doc's rules)."""
    if not path.startswith("/api"):
        return set()
    codes = {401}
    if "requestBody" in operation:
        codes |= {400, 413, 422}
    if operation.get("parameters"):
        codes.add(422)
    if "{run_id}" in path or "{claim_id}" in path or path == "/api/report.html":
        codes.add(404)
    if (method, path) in CONFLICTS:
        codes.add(409)
    if (method, path) in QUEUED:
        codes.add(429)
    return codes


def methods_of(app: FastAPI, path: str) -> list[str]:
    """The methods the document lists for a concrete path (none: no such path)."""
    paths = app.openapi().get("paths", {})
    for template in sorted(paths, key=lambda t: t.count("{")):  # literal paths first
        item = paths[template]
        if re.fullmatch(re.sub(r"\\{[^/]+?\\}", "[^/]+", re.escape(template)), path):
            return sorted(method.upper() for method in item)
    return []


def install(app: FastAPI, limits: dict[str, int]) -> None:
    """``app.openapi()`` builds the document with every error answer and this server's
    limits on a run's config (``Settings.limits``) as maxima (once, then cached)."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            doc = get_openapi(
                title=app.title, version=app.version, summary=app.summary, routes=app.routes
            )
            schemas = doc.setdefault("components", {}).setdefault("schemas", {})
            schemas["Error"] = ERROR
            fields = schemas.get("RunConfig", {}).get("properties", {})
            for name, known in NAMED.items():  # (aliases and other spellings are accepted too)
                if name in fields:
                    fields[name]["enum"] = list(known)
            for name, limit in limits.items():
                if name in fields:
                    fields[name]["maximum"] = min(fields[name].get("maximum", limit), limit)
            for path, item in doc.get("paths", {}).items():
                for method, operation in item.items():
                    answers = operation.setdefault("responses", {})
                    for code in sorted(statuses(method, path, operation)):
                        content = {"application/json": {"schema": {"$ref": ERROR_REF}}}
                        if code == 413:  # Starlette's body limit answers before any route
                            content["text/plain"] = {"schema": {"type": "string"}}
                        answers[str(code)] = {"description": REASONS[code], "content": content}
            app.openapi_schema = doc
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
