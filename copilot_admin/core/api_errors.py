"""Every error under `/api/` is JSON in the contract's shape.

DRF answers the errors of its own views through the API error handler; this middleware covers
what does not reach one or escapes it: no route matches (an unknown path, a non-numeric id:
Django's HTML 404), a disallowed host or an oversized body (400), a server error (500, the
debug page included), and errors rendered by a view with another renderer (the schema view's
YAML). Such a response is replaced by `{"error": {"code", "message"}}` with the same status
and the same headers (`Allow`, `Retry-After`, and those the middleware below this one added:
Content-Security-Policy, `Cache-Control: no-store`, X-Frame-Options), but for its content's.
"""

import json

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.http import HttpResponse

from copilot_admin.core.errors import error_body

API_PREFIX = "/api/"
_CONTENT_HEADERS = frozenset({"content-type", "content-length", "content-language", "content-disposition"})
_CODES = {
    400: ("bad_request", "Bad request."),
    401: ("not_authenticated", "Authentication credentials were not provided."),
    403: ("permission_denied", "You do not have permission to perform this action."),
    404: ("not_found", "Not found."),
    405: ("method_not_allowed", "Method not allowed."),
    406: ("not_acceptable", "Could not satisfy the request's Accept header."),
    413: ("request_too_large", "The request is too large."),
    415: ("unsupported_media_type", "Unsupported media type."),
    429: ("rate_limited", "Too many requests."),
    500: ("server_error", "Internal server error."),
}


def _is_json_error(response) -> bool:
    if getattr(response, "streaming", False):
        return False
    content_type = response.get("Content-Type", "")
    if not content_type.startswith("application/json"):
        return False
    try:
        body = json.loads(response.content)
    except ValueError:
        return False
    return isinstance(body, dict) and isinstance(body.get("error"), dict) and "code" in body["error"]


def api_error_response(request, response):
    """`response` itself, or for an `/api/` error not in the contract's shape, one that is."""
    if response.status_code < 400 or not request.path_info.startswith(API_PREFIX) or _is_json_error(response):
        return response
    status = response.status_code
    code, message = _CODES.get(status, ("server_error" if status >= 500 else "error", response.reason_phrase))
    replacement = HttpResponse(
        json.dumps(error_body(code, message)), status=status, content_type="application/json"
    )
    for header, value in response.items():
        if header.lower() not in _CONTENT_HEADERS:
            replacement[header] = value
    return replacement


class APIErrorMiddleware:
    """See the module docstring. Sync and async capable, so it adds no thread hop."""

    sync_capable = True
    async_capable = True

    def __init__(self, get_response):
        self.get_response = get_response
        if iscoroutinefunction(get_response):
            markcoroutinefunction(self)

    def __call__(self, request):
        if iscoroutinefunction(self):
            return self.__acall__(request)
        return api_error_response(request, self.get_response(request))

    async def __acall__(self, request):
        return api_error_response(request, await self.get_response(request))
