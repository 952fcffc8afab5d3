"""The one place where errors become HTTP: every status, every route, one envelope and `X-Error-Code`."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from app.core.errors import InvalidRequest, ServiceError, ValidationFailed

logger = logging.getLogger(__name__)

_HTTP_CODES = {
    400: ("INVALID_REQUEST", "Invalid request"),
    401: ("UNAUTHORIZED", "Missing or invalid API key"),
    404: ("NOT_FOUND", "Not found"),
    405: ("METHOD_NOT_ALLOWED", "Method not allowed"),
    413: ("PAYLOAD_TOO_LARGE", "Request body too large"),
    415: ("UNSUPPORTED_MEDIA_TYPE", "Unsupported media type"),
}


def error_response(error: ServiceError) -> JSONResponse:
    body: dict[str, Any] = {
        "status": "error",
        "message": error.message,
        "error_details": error.error_details,
    }
    headers = {"X-Error-Code": error.code, **error.headers()}
    return JSONResponse(status_code=error.http_status, content=body, headers=headers)


def validation_error(errors: list[dict[str, Any]]) -> ServiceError:
    """Malformed JSON or a non-object body → 400; a well-formed body that breaks the schema → 422."""
    if any(error.get("type") in ("json_invalid", "model_attributes_type", "dict_type") for error in errors):
        return InvalidRequest("the body must be empty or a JSON object such as {}")
    problems = "; ".join(f"{_location(error)}: {error.get('msg')}" for error in errors)
    return ValidationFailed(problems[:500])


def _location(error: dict[str, Any]) -> str:
    return ".".join(str(part) for part in error.get("loc", ()) if part != "body") or "body"


async def _service_error(_request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, ServiceError)
    return error_response(error)


async def _request_validation(_request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, RequestValidationError)
    return error_response(validation_error(list(error.errors())))


async def _http_exception(_request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, StarletteHTTPException)
    code, message = _HTTP_CODES.get(error.status_code, ("HTTP_ERROR", "Request failed"))
    service_error = ServiceError(message=message)
    service_error.code, service_error.http_status = code, error.status_code
    response = error_response(service_error)
    for name, value in (error.headers or {}).items():
        response.headers.setdefault(name, value)
    return response


async def _unhandled(request: Request, error: Exception) -> JSONResponse:
    # The operator's log gets the traceback (redacted by the log filter); the client never does.
    logger.error("request.unhandled path=%s error=%s", request.url.path, type(error).__name__, exc_info=error)
    return error_response(ServiceError("unexpected error; see the service log"))


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(ServiceError, _service_error)
    app.add_exception_handler(RequestValidationError, _request_validation)
    app.add_exception_handler(StarletteHTTPException, _http_exception)
    app.add_exception_handler(Exception, _unhandled)
