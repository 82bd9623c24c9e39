"""Middleware of the kernel: answers Django produces are never cached by browsers or proxies,
every request runs in an audit scope of its own (where it came from, never who acted), and
pages show a signed-in user times in its own zone."""

from contextlib import contextmanager

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.utils import timezone
from django.utils.cache import patch_cache_control
from django.utils.deprecation import MiddlewareMixin

from copilot_admin.core.client_ip import client_ip
from copilot_admin.core.context import audit_scope, new_correlation_id, request_ids
from copilot_admin.core.timezones import zone_of


class SyncAndAsyncMiddleware:
    """Middleware that runs natively in a sync or an async stack (Django's pattern): `__call__`
    looks at `is_async` and returns the coroutine of its async path when the stack is async."""

    sync_capable = True
    async_capable = True

    def __init__(self, get_response):
        self.get_response = get_response
        self.is_async = iscoroutinefunction(get_response)
        if self.is_async:
            markcoroutinefunction(self)


class NoStoreMiddleware(MiddlewareMixin):
    """`Cache-Control: no-store` on every answer Django produces: pages (a member's data, CSRF
    tokens) and API responses (bearer-authenticated data) must stay out of browser and proxy
    caches. Static files are served by WhiteNoise before this middleware and keep their own
    caching headers."""

    def process_response(self, request, response):
        patch_cache_control(response, no_store=True, private=True)
        return response


class RequestScopeMiddleware(SyncAndAsyncMiddleware):
    """Every request runs in its own audit scope: its correlation id, the client's request
    id and the client address (behind the trusted proxies), so that entries recorded by the
    services a request calls say where the change came from. Who acted is not here: each
    service records the actor it is given."""

    def __call__(self, request):
        if self.is_async:
            return self._acall(request)
        with audit_scope(**_request_fields(request)):
            return self.get_response(request)

    async def _acall(self, request):
        with audit_scope(**_request_fields(request)):
            return await self.get_response(request)


def _request_fields(request) -> dict:
    # A fresh scope: nothing carries over from an earlier request on this thread.
    request.audit_correlation_id = new_correlation_id()
    return {"tenant": None, "channel": "", "remote_addr": client_ip(request) or "", **request_ids(request)}


class UserTimeZoneMiddleware(SyncAndAsyncMiddleware):
    """Pages show a signed-in user times in its own zone (`User.time_zone`, blank: UTC).

    The zone is activated for pages only: never under `/api/`, whose answers are for machines
    and stay UTC (as do exports, e-mails and tasks, which format times explicitly in UTC). It
    is deactivated after every request, so nothing carries over to the next one on the thread.
    """

    API_PREFIX = "/api/"
    def __call__(self, request):
        if self.is_async:
            return self._acall(request)
        user = None if self._is_api(request) else getattr(request, "user", None)
        with _user_zone(user):
            return self.get_response(request)

    async def _acall(self, request):
        user = None if self._is_api(request) else await request.auser()
        with _user_zone(user):
            return await self.get_response(request)

    def _is_api(self, request) -> bool:
        return request.path.startswith(self.API_PREFIX)


@contextmanager
def _user_zone(user):
    """`user`'s zone active for the block (UTC for nobody, anonymous, or blank), then none."""
    name = getattr(user, "time_zone", "") if user is not None and user.is_authenticated else ""
    if name:
        timezone.activate(zone_of(name))
    else:
        timezone.deactivate()
    try:
        yield
    finally:
        timezone.deactivate()
