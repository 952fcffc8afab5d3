"""The one place where errors become HTTP: every status, every route, one envelope and `X-Error-Code`.

The OpenAPI description of each error response is built here too, from the error classes themselves.
"""

from __future__ import annotations

import logging
import re
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from app.core.errors import BY_HTTP_STATUS, InvalidRequest, ServiceError, ValidationFailed
from app.schemas.tiktok import ErrorResponse

logger = logging.getLogger(__name__)


def error_body(error: ServiceError) -> dict[str, Any]:
    return {"status": "error", "message": error.message, "error_details": error.error_details}


def error_response(error: ServiceError) -> JSONResponse:
    headers = {"X-Error-Code": error.code, **error.headers()}
    return JSONResponse(status_code=error.http_status, content=error_body(error), headers=headers)


def validation_error(errors: list[dict[str, Any]]) -> ServiceError:
    """Malformed JSON or a non-object body → 400; a well-formed body that breaks the schema → 422."""
    if any(error.get("type") in ("json_invalid", "model_attributes_type", "dict_type") for error in errors):
        return InvalidRequest("the body must be empty or a JSON object such as {}")
    problems = "; ".join(f"{_location(error)}: {error.get('msg')}" for error in errors)
    return ValidationFailed(problems[:500])


def _location(error: dict[str, Any]) -> str:
    return ".".join(str(part) for part in error.get("loc", ()) if part != "body") or "body"


def openapi_errors(*errors: type[ServiceError]) -> dict[int | str, dict[str, Any]]:
    """`responses=` for a route: one entry per status, an example per error class that can answer it."""
    by_status: dict[int, list[type[ServiceError]]] = {}
    for error in errors:
        by_status.setdefault(error.http_status, []).append(error)
    responses: dict[int | str, dict[str, Any]] = {}
    for status, classes in sorted(by_status.items()):
        headers: dict[str, Any] = {
            "X-Error-Code": {"description": "equals error_details.code", "schema": {"type": "string"}}
        }
        if any(error.http_status == 429 for error in classes):
            headers["Retry-After"] = {
                "description": "seconds until a slot frees",
                "schema": {"type": "integer"},
            }
        examples = {
            error.__name__: {
                "summary": error.description,
                "value": {
                    "status": "error",
                    "message": error.message,
                    "error_details": {"code": error.code, **error.example},
                },
            }
            for error in classes
        }
        responses[status] = {
            "model": ErrorResponse,
            "description": "; ".join(dict.fromkeys(error.description for error in classes)),
            "headers": headers,
            "content": {"application/json": {"examples": examples}},
        }
    return responses


async def _service_error(_request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, ServiceError)
    return error_response(error)


async def _request_validation(_request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, RequestValidationError)
    return error_response(validation_error(list(error.errors())))


async def _http_exception(request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, StarletteHTTPException)
    known = BY_HTTP_STATUS.get(error.status_code)
    if known is not None:
        response = error_response(known())
    else:
        generic = ServiceError()
        body = error_body(generic) | {"message": "Request failed"}
        body["error_details"]["code"] = "HTTP_ERROR"
        response = JSONResponse(body, status_code=error.status_code, headers={"X-Error-Code": "HTTP_ERROR"})
    for name, value in (error.headers or {}).items():
        response.headers.setdefault(name, value)
    if error.status_code == 405:
        # Starlette names only the methods of the first route that matched the path.
        response.headers["Allow"] = ", ".join(_allowed_methods(request))
    return response


def _allowed_methods(request: Request) -> list[str]:
    """Every method the OpenAPI document gives the requested path (GET and DELETE for a session)."""
    path = request.url.path
    methods: set[str] = set()
    for template, operations in request.app.openapi()["paths"].items():
        if re.fullmatch(re.sub(r"\\{[^/]+?\\}", "[^/]+", re.escape(template)), path):
            methods.update(method.upper() for method in operations)
    return sorted(methods)


async def _unhandled(request: Request, error: Exception) -> JSONResponse:
    # The operator's log gets the traceback (redacted by the log filter); the client never does.
    logger.error(
        "request.unhandled", extra={"path": request.url.path, "error": type(error).__name__}, exc_info=error
    )
    return error_response(ServiceError("unexpected error; see the service log"))


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(ServiceError, _service_error)
    app.add_exception_handler(RequestValidationError, _request_validation)
    app.add_exception_handler(StarletteHTTPException, _http_exception)
    app.add_exception_handler(Exception, _unhandled)
