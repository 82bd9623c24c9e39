"""The copilot call's lean ASGI route: the API call through Django with a shorter middleware stack.

Every technician's copilot call is `POST /api/v1/tenants/<slug>/copilot/<feature>/` with a
bearer credential. Under ASGI, Django runs each sync-only middleware (`MiddlewareMixin`) in a
thread hop of its own, twice per request, on the one thread asgiref keeps for thread-sensitive
work: at hundreds of calls in flight those hops queue behind each other, and the browser's
middleware (sessions, CSRF, the session's user, messages, forced MFA enrolment, login lockout)
does nothing for a bearer-token request anyway.

`LeanCallRouter` sits in front of the normal application (`copilot_admin/asgi.py`) and sends a
request to `LeanCallHandler` only when all of this holds:
- HTTP `POST` to exactly one of the copilot feature routes (built from the feature registry);
- an `Authorization: Bearer ...` header (an API token or an integration key);
- no session cookie (a browser's request goes the normal way, with CSRF and its session).
Anything else, including every other path, websocket and lifespan events, goes to the normal
application unchanged.

`LeanCallHandler` is Django's own `ASGIHandler` (same URLconf, same view, same DRF
authentication, tenant resolver, permissions, error handling and audit) with the middleware of
`settings.API_CALL_MIDDLEWARE` instead of `settings.MIDDLEWARE`: `MIDDLEWARE` minus the
browser-only entries. Of those kept, the ones known to do CPU work only (headers, path checks)
are called inline on the event loop (`INLINE_MIDDLEWARE`: the same `process_request` /
`process_response` methods, in the same order, without the thread hop); any other must be
natively async-capable (not a `MiddlewareMixin`, which would hop to a thread), or the handler
refuses to start. `tests/copilot/test_lean_call_route.py` checks that every refusal and every
success answers the same through both routes.
"""

from __future__ import annotations

import re
from typing import Any

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.handlers.asgi import ASGIHandler
from django.core.handlers.exception import convert_exception_to_response
from django.utils.deprecation import MiddlewareMixin
from django.utils.module_loading import import_string

from copilot_admin.copilot.features import features

# The middleware the lean route drops from MIDDLEWARE: each serves browsers and sessions only.
BROWSER_ONLY_MIDDLEWARE = (
    "whitenoise.middleware.WhiteNoiseMiddleware",  # static files: not an API path
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",  # DRF's views are CSRF-exempt; a session cookie goes the normal way
    "django.contrib.auth.middleware.AuthenticationMiddleware",  # the session's user; DRF authenticates the bearer
    "copilot_admin.identity.mfa_middleware.MfaEnrolmentMiddleware",  # applies to session logins only
    "django.contrib.messages.middleware.MessageMiddleware",
    "axes.middleware.AxesMiddleware",  # password-login lockout
)

# Sync-only middleware whose methods do CPU work only (no database, cache or network): run on
# the event loop instead of in a thread hop.
INLINE_MIDDLEWARE = frozenset({
    "django.middleware.security.SecurityMiddleware",
    "csp.middleware.CSPMiddleware",
    "copilot_admin.core.middleware.NoStoreMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
})


def api_call_middleware(middleware: list[str]) -> list[str]:
    """`middleware` (the settings' MIDDLEWARE) without the browser-only entries, in order."""
    return [path for path in middleware if path not in BROWSER_ONLY_MIDDLEWARE]


class _Inline:
    """A sync-only middleware's `process_request`/`process_response`, called on the event loop
    (what `MiddlewareMixin.__acall__` does, minus the two thread hops)."""

    def __init__(self, middleware: Any, get_response: Any) -> None:
        self.middleware = middleware
        self.get_response = get_response
        self.process_request = getattr(middleware, "process_request", None)
        self.process_response = getattr(middleware, "process_response", None)
        markcoroutinefunction(self)

    async def __call__(self, request):
        response = self.process_request(request) if self.process_request else None
        response = response or await self.get_response(request)
        if self.process_response:
            response = self.process_response(request, response)
        return response


class LeanCallHandler(ASGIHandler):
    """Django's ASGI handler with `settings.API_CALL_MIDDLEWARE` (see the module docstring).

    It also serves each request without a `ThreadSensitiveContext` of its own: Django's handler
    opens one per request, which starts a new thread for the request's thread-sensitive work
    (here only the `request_started`/`request_finished` receivers: the call's database work
    runs on the copilot's ORM pool, `services.run_orm`); without it that work runs on asgiref's
    one shared thread, and no thread is started per call.
    """

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            raise ValueError(f"The lean copilot route serves HTTP only, not {scope['type']}.")
        await self.handle(scope, receive, send)

    def load_middleware(self, is_async: bool = False) -> None:
        if not is_async:
            raise ImproperlyConfigured("LeanCallHandler serves ASGI only.")
        self._view_middleware, self._template_response_middleware, self._exception_middleware = [], [], []
        handler = convert_exception_to_response(self._get_response_async)
        for path in reversed(settings.API_CALL_MIDDLEWARE):
            factory = import_string(path)
            if path in INLINE_MIDDLEWARE:
                middleware = factory(handler)
                for hook in ("process_view", "process_template_response", "process_exception"):
                    if hasattr(middleware, hook):
                        raise ImproperlyConfigured(f"{path}.{hook}: not supported inline on the lean route.")
                wrapped = _Inline(middleware, handler)
            elif (getattr(factory, "async_capable", False) and not issubclass(factory, MiddlewareMixin)
                  and not hasattr(factory, "process_view")):
                middleware = wrapped = factory(handler)
                if not iscoroutinefunction(middleware):
                    raise ImproperlyConfigured(f"{path} did not adapt to async on the lean route.")
            else:
                raise ImproperlyConfigured(
                    f"{path}: the lean copilot route runs only async-capable middleware or INLINE_MIDDLEWARE."
                )
            handler = convert_exception_to_response(wrapped)
        self._middleware_chain = handler


def copilot_call_path() -> re.Pattern[str]:
    """The paths of the copilot feature API routes (`/api/v1/tenants/<slug>/copilot/<feature>/`)."""
    slugs = "|".join(re.escape(feature.slug) for feature in features())
    return re.compile(rf"^/api/v1/tenants/[-a-zA-Z0-9_]+/copilot/(?:{slugs})/\Z")


class LeanCallRouter:
    """The ASGI application: the copilot call's bearer-token POSTs to the lean handler, the rest
    to `application` (see the module docstring)."""

    def __init__(self, application: Any, lean: Any | None = None) -> None:
        self.application = application
        self.lean = lean if lean is not None else LeanCallHandler()
        self.path = copilot_call_path()
        self.session_cookie = settings.SESSION_COOKIE_NAME.encode("latin-1")

    def is_lean(self, scope: dict) -> bool:
        """Whether this request takes the lean route."""
        if scope.get("type") != "http" or scope.get("method") != "POST":
            return False
        if not self.path.match(scope.get("path", "")):
            return False
        bearer = False
        for name, value in scope.get("headers", ()):
            if name == b"authorization":
                if bearer:  # more than one: let the normal route decide
                    return False
                bearer = value[:7].lower() == b"bearer "
            elif name == b"cookie" and self._has_session_cookie(value):
                return False
        return bearer

    def _has_session_cookie(self, header: bytes) -> bool:
        for part in header.split(b";"):
            name, _, _ = part.strip().partition(b"=")
            if name == self.session_cookie:
                return True
        return False

    async def __call__(self, scope, receive, send):
        if self.is_lean(scope):
            return await self.lean(scope, receive, send)
        return await self.application(scope, receive, send)
