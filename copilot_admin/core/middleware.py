"""Middleware of the kernel: answers Django produces are never cached by browsers or proxies,
and every request runs in an audit scope of its own (where it came from, never who acted)."""

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.utils.cache import patch_cache_control
from django.utils.deprecation import MiddlewareMixin

from copilot_admin.core.client_ip import client_ip
from copilot_admin.core.context import audit_scope, new_correlation_id, request_ids


class NoStoreMiddleware(MiddlewareMixin):
    """`Cache-Control: no-store` on every answer Django produces: pages (a member's data, CSRF
    tokens) and API responses (bearer-authenticated data) must stay out of browser and proxy
    caches. Static files are served by WhiteNoise before this middleware and keep their own
    caching headers."""

    def process_response(self, request, response):
        patch_cache_control(response, no_store=True, private=True)
        return response


class RequestScopeMiddleware:
    """Every request runs in its own audit scope: its correlation id, the client's request
    id and the client address (behind the trusted proxies), so that entries recorded by the
    services a request calls say where the change came from. Who acted is not here: each
    service records the actor it is given."""

    sync_capable = True
    async_capable = True

    def __init__(self, get_response):
        self.get_response = get_response
        self.is_async = iscoroutinefunction(get_response)
        if self.is_async:
            markcoroutinefunction(self)

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
