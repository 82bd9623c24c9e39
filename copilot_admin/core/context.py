"""What the audit log knows about the unit of work in progress (a request or a task): where it
came from, never who acted (services are given their actor).

`core.middleware.RequestScopeMiddleware` opens a scope for every request (its correlation id, the client's
request id and address); the tenant pages and API narrow it once the tenant is resolved
(channel web or api); tasks open their own from their id. It gives every entry of one request
or task the same correlation id and client address, and says how the actor came in (web
session, API token, task).

The correlation id is always ours (a new uuid per request): a client cannot make its action
share another's. The client's own `X-Request-ID`, sanitized and cut short, is kept apart as
`client_request_id` (in each entry's metadata), so a client can still find its requests.
"""

import re
import uuid
from contextlib import contextmanager
from contextvars import ContextVar, Token
from dataclasses import dataclass, replace


class Channel:
    WEB = "web"
    API = "api"
    TASK = "task"


@dataclass(frozen=True)
class AuditScope:
    tenant: object | None = None
    channel: str = ""
    correlation_id: str = ""
    client_request_id: str = ""
    remote_addr: str = ""


_scope: ContextVar[AuditScope | None] = ContextVar("copilot_admin_audit_scope", default=None)
_NOT_IN_CLIENT_ID = re.compile(r"[^A-Za-z0-9._:-]")
CLIENT_REQUEST_ID_MAX_LENGTH = 64


def current_scope() -> AuditScope:
    return _scope.get() or AuditScope()


def new_correlation_id() -> str:
    return uuid.uuid4().hex


def request_correlation_id(request) -> str:
    """The request's correlation id: ours, never the client's (the scope's when the request is
    handled inside one, else a new one), remembered on the request so every entry of the
    request shares it."""
    if request is None:
        return current_scope().correlation_id
    django_request = getattr(request, "_request", request)
    existing = getattr(django_request, "audit_correlation_id", None)
    if existing:
        return existing
    cid = current_scope().correlation_id or new_correlation_id()
    django_request.audit_correlation_id = cid
    return cid


def client_request_id(request) -> str:
    """The client's `X-Request-ID`, kept only as a label: characters outside letters, digits
    and `._:-` dropped, at most 64 characters; empty when the client sent none."""
    if request is None:
        return current_scope().client_request_id
    django_request = getattr(request, "_request", request)
    supplied = django_request.META.get("HTTP_X_REQUEST_ID", "")
    return _NOT_IN_CLIENT_ID.sub("", supplied)[:CLIENT_REQUEST_ID_MAX_LENGTH] if isinstance(supplied, str) else ""


def request_ids(request) -> dict[str, str]:
    """The scope fields that identify a request: `correlation_id` and `client_request_id`."""
    return {"correlation_id": request_correlation_id(request), "client_request_id": client_request_id(request)}


def scope_enter(**fields) -> Token:
    """Narrow the current scope; pass the token to `scope_exit` when the unit of work ends."""
    return _scope.set(replace(current_scope(), **fields))


def scope_exit(token: Token | None) -> None:
    if token is None:
        return
    try:
        _scope.reset(token)
    except ValueError:  # entered in another context (a thread pool); nothing to undo here
        _scope.set(None)


@contextmanager
def audit_scope(**fields):
    token = scope_enter(**fields)
    try:
        yield current_scope()
    finally:
        scope_exit(token)

