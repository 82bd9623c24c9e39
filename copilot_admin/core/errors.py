"""One error type for the application and one API error handler.

Services raise `ApplicationError` (or a subclass) with a stable code; the API answers
`{"error": {"code": ..., "message": ...}}` (validation errors add `fields`), and the pages
show the message.
"""

from contextlib import contextmanager

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import IntegrityError, transaction
from django.http import Http404
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler

from copilot_admin.core.parsers import JSONTooDeep


class ApplicationError(Exception):
    """A refusal or failure a client can act on: a stable code, a message, an HTTP status."""

    status_code = status.HTTP_400_BAD_REQUEST
    code = "invalid"

    def __init__(self, message: str, *, code: str | None = None, status_code: int | None = None, fields=None):
        super().__init__(message)
        self.message = message
        if code:
            self.code = code
        if status_code:
            self.status_code = status_code
        self.fields = fields or {}


class PermissionRefused(ApplicationError):
    status_code = status.HTTP_403_FORBIDDEN
    code = "permission_denied"


class NotFound(ApplicationError):
    status_code = status.HTTP_404_NOT_FOUND
    code = "not_found"


class Conflict(ApplicationError):
    status_code = status.HTTP_409_CONFLICT
    code = "conflict"


_DRF_CODES = {
    JSONTooDeep: "too_deep",
    exceptions.NotAuthenticated: "not_authenticated",
    exceptions.AuthenticationFailed: "authentication_failed",
    exceptions.PermissionDenied: "permission_denied",
    exceptions.NotFound: "not_found",
    exceptions.MethodNotAllowed: "method_not_allowed",
    exceptions.NotAcceptable: "not_acceptable",
    exceptions.UnsupportedMediaType: "unsupported_media_type",
    exceptions.Throttled: "rate_limited",
    exceptions.ParseError: "parse_error",
    exceptions.ValidationError: "invalid",
}


def is_unique_violation(error: IntegrityError, constraint: str) -> bool:
    """Whether `error` is the violation of the unique constraint named `constraint` (PostgreSQL
    names it; SQLite names the index for expression constraints and the columns otherwise,
    so there the caller's single constraint is the only unique one the write can hit)."""
    cause = error.__cause__
    diag = getattr(cause, "diag", None)
    if diag is not None and getattr(diag, "constraint_name", None):
        return diag.constraint_name == constraint
    return "UNIQUE constraint failed" in str(error) or "unique" in str(error).lower()


@contextmanager
def refusing_duplicates(*, constraint: str, error: ApplicationError):
    """A write in a savepoint: when a concurrent writer got past the caller's own check too and
    the database refuses the write on the unique `constraint`, `error` is raised instead of a
    500, and the caller's transaction stays usable."""
    try:
        with transaction.atomic():
            yield
    except IntegrityError as exc:
        if not is_unique_violation(exc, constraint):
            raise
        raise error from None


def error_body(code: str, message: str, fields=None) -> dict:
    body = {"error": {"code": code, "message": message}}
    if fields:
        body["error"]["fields"] = fields
    return body


def _flatten_message(detail) -> str:
    if isinstance(detail, list) and detail:
        return _flatten_message(detail[0])
    if isinstance(detail, dict) and detail:
        key, value = next(iter(detail.items()))
        return f"{key}: {_flatten_message(value)}"
    return str(detail)


def api_exception_handler(exc, context):
    """DRF EXCEPTION_HANDLER: every error in the contract's shape."""
    if isinstance(exc, ApplicationError):
        response = Response(error_body(exc.code, exc.message, exc.fields), status=exc.status_code)
        if getattr(exc, "retry_after", None):
            response["Retry-After"] = str(exc.retry_after)
        return response
    if isinstance(exc, DjangoValidationError):
        exc = exceptions.ValidationError(detail=exc.message_dict if hasattr(exc, "error_dict") else exc.messages)
    elif isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied()

    response = exception_handler(exc, context)
    if response is None:
        return None
    code = next((c for cls, c in _DRF_CODES.items() if isinstance(exc, cls)), "error")
    if isinstance(exc, exceptions.ValidationError):
        fields = exc.detail if isinstance(exc.detail, dict) else {"non_field_errors": exc.detail}
        response.data = error_body(code, _flatten_message(exc.detail), fields)
    else:
        response.data = error_body(code, _flatten_message(exc.detail))
    return response


def refuse_body(request) -> None:
    """For an action that takes no body: reading it refuses what cannot be parsed or stored (the
    parser's 400), and a body that parses is refused too (400 `validation_error`), not ignored."""
    data = request.data
    if data:
        unknown = {str(name): ["unknown field"] for name in data} if isinstance(data, dict) else None
        raise ApplicationError("This action takes no body.", code="validation_error", fields=unknown)
