"""HTTP errors as RFC 9457 problem details, naming the field at fault."""

from __future__ import annotations

import json
import logging
from http import HTTPStatus
from typing import Any

from aiokafka.errors import KafkaError
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from pymongo.errors import ConnectionFailure
from starlette.exceptions import HTTPException as StarletteHTTPException

PROBLEM_JSON = "application/problem+json"
log = logging.getLogger(__name__)


class FieldError(BaseModel):
    """One field at fault in a request (a dotted path into the body, query or path)."""

    model_config = ConfigDict(extra="allow")

    field: str
    message: str
    type: str | None = None


class Problem(BaseModel):
    """The body of every error answer: RFC 9457 problem details (media type
    application/problem+json); a 422 lists the fields at fault in `errors`."""

    model_config = ConfigDict(extra="allow")

    type: str = "about:blank"
    title: str
    status: int = Field(ge=400, le=599)
    detail: str
    errors: list[FieldError] | None = None


_PROBLEM_MEANINGS = {
    400: "the request is malformed",
    401: "no valid bearer token",
    403: "the caller's roles do not allow this",
    404: "no such resource visible to the caller",
    409: "the resource's state does not allow this (or the request repeats one with other "
         "content)",
    422: "the request is not valid; `errors` names the fields at fault",
    503: "a dependency (database or broker) is unavailable; retry after `Retry-After`",
}
PROBLEM_SCHEMA_REF = "#/components/schemas/Problem"


def problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` documenting the problem details an operation may answer."""
    return {status: {"description": _PROBLEM_MEANINGS.get(status, HTTPStatus(status).phrase),
                     "content": {PROBLEM_JSON: {"schema": {"$ref": PROBLEM_SCHEMA_REF}}}}
            for status in statuses}


def problem_schemas() -> dict[str, Any]:
    """The component schemas `problem_responses` refers to."""
    schema = Problem.model_json_schema(ref_template="#/components/schemas/{model}")
    definitions = schema.pop("$defs", {})
    return {"Problem": schema, **definitions}


def problem(status: int, detail: str, *, title: str | None = None,
            type_: str = "about:blank", headers: dict[str, str] | None = None,
            **extra: Any) -> JSONResponse:
    """A problem-details response."""
    body = {"type": type_, "title": title or HTTPStatus(status).phrase, "status": status,
            "detail": detail, **extra}
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON, headers=headers)


class InvalidField(StarletteHTTPException):
    """Raise from a handler: a 422 naming the field at fault, shaped like request validation.

    For the rules a schema cannot state (a KPI the goal does not have, a closing date in the
    past), so a caller learns which field to fix whichever check refused it.
    """

    def __init__(self, field: str, message: str, *, kind: str = "rule") -> None:
        super().__init__(422, f"{field}: {message}")
        self.errors = [{"field": field, "message": message, "type": kind}]


def _field_names(errors: list[dict[str, Any]]) -> str:
    return ", ".join(item["field"] for item in errors)


def document_problems(document: dict[str, Any]) -> dict[str, Any]:
    """Complete a FastAPI OpenAPI document with the problem details the service answers.

    FastAPI documents request validation errors as application/json `HTTPValidationError`
    and leaves out the 401 of its bearer dependency and the 400 for a body it cannot parse;
    the services answer all three as problem details (see `install_problem_handlers`).
    Changes `document` in place and returns it.
    """
    fastapi_validation = "#/components/schemas/HTTPValidationError"
    for operations in document.get("paths", {}).values():
        for operation in operations.values():
            responses = operation.setdefault("responses", {})
            if fastapi_validation in json.dumps(responses.get("422", {})):
                responses["422"] = problem_responses(422)[422]
            if "requestBody" in operation:  # a body that is not JSON at all
                responses.setdefault("400", problem_responses(400)[400])
            if operation.get("security"):
                responses.setdefault("401", problem_responses(401)[401])
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    for unused in ("HTTPValidationError", "ValidationError"):
        if f"#/components/schemas/{unused}" not in json.dumps(document):
            schemas.pop(unused, None)
    schemas.update(problem_schemas())
    return document


def _field_path(location: tuple[Any, ...]) -> str:
    return ".".join(str(part) for part in location)


async def _validation_problem(request: Request, error: RequestValidationError) -> JSONResponse:
    errors = [{"field": _field_path(item["loc"]), "message": item["msg"], "type": item["type"]}
              for item in error.errors()]
    return problem(422, f"invalid request: {_field_names(errors)}",
                   title="Request validation failed", type_="urn:coaching:problem:validation",
                   errors=errors)


async def _invalid_field_problem(request: Request, error: InvalidField) -> JSONResponse:
    return problem(422, str(error.detail), title="Request refused",
                   type_="urn:coaching:problem:validation", errors=error.errors)


async def _http_problem(request: Request, error: StarletteHTTPException) -> JSONResponse:
    return problem(error.status_code, str(error.detail), headers=getattr(error, "headers", None))


async def _unexpected_problem(request: Request, error: Exception) -> JSONResponse:
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    return problem(500, "an unexpected error occurred; it has been logged")


async def _unavailable_problem(request: Request, error: Exception) -> JSONResponse:
    log.warning("dependency unavailable on %s %s: %s", request.method, request.url.path,
                type(error).__name__)
    return problem(503, "a dependency (database or broker) is unavailable; retry shortly",
                   headers={"Retry-After": "2"})


def install_problem_handlers(app: FastAPI) -> None:
    """Make every error answer problem details."""
    app.add_exception_handler(RequestValidationError, _validation_problem)
    app.add_exception_handler(InvalidField, _invalid_field_problem)
    app.add_exception_handler(ConnectionFailure, _unavailable_problem)
    app.add_exception_handler(KafkaError, _unavailable_problem)
    app.add_exception_handler(StarletteHTTPException, _http_problem)
    app.add_exception_handler(Exception, _unexpected_problem)
