"""HTTP errors as RFC 9457 problem details, naming the field at fault."""

from __future__ import annotations

import logging
from http import HTTPStatus
from typing import Any

from aiokafka.errors import KafkaError
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pymongo.errors import ConnectionFailure
from starlette.exceptions import HTTPException as StarletteHTTPException

PROBLEM_JSON = "application/problem+json"
log = logging.getLogger(__name__)


def problem(status: int, detail: str, *, title: str | None = None,
            type_: str = "about:blank", headers: dict[str, str] | None = None,
            **extra: Any) -> JSONResponse:
    """A problem-details response."""
    body = {"type": type_, "title": title or HTTPStatus(status).phrase, "status": status,
            "detail": detail, **extra}
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON, headers=headers)


def _field_path(location: tuple[Any, ...]) -> str:
    return ".".join(str(part) for part in location)


async def _validation_problem(request: Request, error: RequestValidationError) -> JSONResponse:
    errors = [{"field": _field_path(item["loc"]), "message": item["msg"], "type": item["type"]}
              for item in error.errors()]
    fields = ", ".join(item["field"] for item in errors)
    return problem(422, f"invalid request: {fields}", title="Request validation failed",
                   type_="urn:coaching:problem:validation", errors=errors)


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
    app.add_exception_handler(ConnectionFailure, _unavailable_problem)
    app.add_exception_handler(KafkaError, _unavailable_problem)
    app.add_exception_handler(StarletteHTTPException, _http_problem)
    app.add_exception_handler(Exception, _unexpected_problem)
