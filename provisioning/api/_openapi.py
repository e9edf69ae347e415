"""The OpenAPI 3.1 document and the /docs page, generated from the registered operations.

Schemas come from the pydantic models (JSON Schema 2020-12, which OpenAPI 3.1 uses as is);
every operation documents the problem+json answers the framework can give it, so a client
(or schemathesis) can check every response against the document.
"""

from __future__ import annotations

import html
import re
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from provisioning.api.framework import Operation, response_model_of

PROBLEM_SCHEMA = {
    "type": "object",
    "required": ["type", "title", "status", "detail"],
    "properties": {
        "type": {"type": "string", "format": "uri"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "instance": {"type": "string"},
        "field": {"type": "string"},
        "rule": {"type": "string"},
        "errors": {"type": "array", "items": {
            "type": "object", "required": ["field", "message"],
            "properties": {"field": {"type": "string"}, "message": {"type": "string"}, "rule": {"type": "string"}}}},
    },
    "additionalProperties": True,
}

_REASONS = {
    400: "Malformed request (for example unparseable JSON)",
    401: "No bearer token, or an unknown or revoked one",
    403: "The token's role may not do this",
    404: "No such resource in this organisation",
    409: "Conflicts with the current state (a uniqueness or business rule)",
    412: "If-Match does not match the resource's current ETag",
    413: "Body too large",
    415: "Body is not JSON",
    422: "A value breaks a validation or business rule (the problem names the field and the rule)",
    503: "The store is busy; retry",
}
_PATH_PARAM = re.compile(r"{([^}:]+)(?::[^}]*)?}")


def _errors_for(op: Operation) -> list[int]:
    statuses = [400, 422, 503]
    if not op.public:
        statuses += [401, 403]
    if "{" in op.path or op.method != "GET":
        statuses += [404, 409]
    if op.method in ("PUT", "PATCH", "DELETE"):
        statuses.append(412)
    if op.body is not None:
        statuses += [413, 415]
    statuses += list(op.responses)
    return sorted(set(statuses) - {op.status})


def build_openapi(operations: list[Operation], *, title: str = "callrouter provisioning API",
                  version: str = "1") -> dict[str, Any]:
    inputs: list[tuple[type[BaseModel], str]] = []
    for op in operations:
        if op.body is not None:
            inputs.append((op.body, "validation"))
        model, _ = response_model_of(op.response)
        if model is not None:
            inputs.append((model, "serialization"))
    refs, top = models_json_schema(list(dict.fromkeys(inputs)), by_alias=True,
                                   ref_template="#/components/schemas/{model}")
    schemas: dict[str, Any] = dict(top.get("$defs", {}))
    schemas["Problem"] = PROBLEM_SCHEMA

    paths: dict[str, dict[str, Any]] = {}
    for op in operations:
        entry: dict[str, Any] = {"operationId": op.operation_id, "summary": op.summary, "tags": op.tags}
        if op.description:
            entry["description"] = op.description
        if not op.public:
            entry["security"] = [{"bearer": []}]
            entry["x-roles"] = sorted(op.roles)
        parameters = [{"name": name, "in": "path", "required": True, "schema": {"type": "string", "minLength": 1}}
                      for name in _PATH_PARAM.findall(op.path)]
        if op.query is not None:
            query_schema = op.query.model_json_schema(by_alias=True, ref_template="#/components/schemas/{model}")
            required = set(query_schema.get("required", []))
            for name, prop in query_schema.get("properties", {}).items():
                param = {"name": name, "in": "query", "required": name in required, "schema": prop}
                if prop.get("description"):
                    param["description"] = prop["description"]
                parameters.append(param)
            schemas.update(query_schema.get("$defs", {}))
        if op.method == "POST":
            parameters.append({"name": "Idempotency-Key", "in": "header", "required": False,
                               "schema": {"type": "string", "minLength": 1, "maxLength": 255},
                               "description": "Replays the first response for a repeated request"})
        if op.method in ("PUT", "PATCH", "DELETE"):
            parameters.append({"name": "If-Match", "in": "header", "required": False, "schema": {"type": "string"},
                               "description": "The ETag from GET; 412 if the resource changed since"})
        if parameters:
            entry["parameters"] = parameters
        if op.request_body is not None:
            entry["requestBody"] = op.request_body
        elif op.body is not None:
            entry["requestBody"] = {"required": True, "content": {"application/json": {
                "schema": refs[(op.body, "validation")]}}}

        responses: dict[str, Any] = {}
        model, is_list = response_model_of(op.response)
        ok: dict[str, Any] = {"description": op.summary}
        if op.status != 204:
            if model is not None:
                schema = refs[(model, "serialization")]
                ok["content"] = {"application/json": {"schema": {"type": "array", "items": schema} if is_list
                                                      else schema}}
            else:
                ok["content"] = {"application/json": {"schema": {}}}
        if op.method == "GET" or (op.method in ("PUT", "PATCH") and op.status == 200):
            ok["headers"] = {"ETag": {"schema": {"type": "string"}}}
        responses[str(op.status)] = ok
        if op.cache:
            responses["304"] = {"description": "Not modified (If-None-Match matched the ETag)"}
        for status in _errors_for(op):
            content: dict[str, Any] = {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}
            if status == 400:
                # HTTP that cannot be parsed at all (a request line over 64 KiB, broken framing) is
                # answered by the HTTP layer before the API sees it, in plain text.
                content["text/plain"] = {"schema": {"type": "string"}}
            responses[str(status)] = {"description": op.responses.get(status, _REASONS.get(status, "Error")),
                                      "content": content}
        entry["responses"] = responses
        paths.setdefault(op.path, {})[op.method.lower()] = entry

    return {
        "openapi": "3.1.0",
        "info": {"title": title, "version": version,
                 "description": "Errors are RFC 9457 problem+json documents naming the field and the rule."},
        "servers": [{"url": "/"}],
        "paths": paths,
        "components": {"schemas": schemas,
                       "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}},
    }


def docs_page(document: dict[str, Any]) -> str:
    """A self-contained HTML listing of every operation (works offline, no scripts)."""
    esc = html.escape
    rows = []
    for path, methods in document["paths"].items():
        for method, op in methods.items():
            roles = ", ".join(op.get("x-roles", [])) or "public"
            statuses = ", ".join(op["responses"])
            rows.append(f"<tr><td class=m>{esc(method.upper())}</td><td><code>{esc(path)}</code></td>"
                        f"<td>{esc(op['summary'])}</td><td>{esc(roles)}</td><td>{esc(statuses)}</td></tr>")
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{esc(document['info']['title'])}</title>
<style>body{{font-family:sans-serif;margin:2em}}table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:4px 8px;text-align:left;vertical-align:top}}.m{{font-weight:bold}}</style>
</head><body><h1>{esc(document['info']['title'])}</h1>
<p>The machine-readable description is <a href="/openapi.json">/openapi.json</a> (OpenAPI 3.1).
Authenticate with <code>Authorization: Bearer &lt;token&gt;</code>. Errors are
<code>application/problem+json</code> (RFC 9457) naming the <code>field</code> and the <code>rule</code>.</p>
<table><tr><th>method</th><th>path</th><th>what</th><th>roles</th><th>statuses</th></tr>
{''.join(rows)}
</table></body></html>
"""
