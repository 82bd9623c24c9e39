"""Request-wide middleware: the audit actor of browser requests, and no caching of answers."""

from auditlog.context import set_actor
from django.utils.cache import patch_cache_control
from django.utils.deprecation import MiddlewareMixin

from copilot_admin.access.client_ip import client_ip


class AuditActorMiddleware:
    """Session requests: set the django-auditlog actor and client address for the request.

    API requests authenticate later (inside DRF); the API base classes set the actor there.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        user = request.user if request.user.is_authenticated else None
        with set_actor(actor=user, remote_addr=client_ip(request)):
            return self.get_response(request)


class NoStoreMiddleware(MiddlewareMixin):
    """`Cache-Control: no-store` on every answer Django produces: pages (a member's data, CSRF
    tokens) and API responses (bearer-authenticated data) must stay out of browser and proxy
    caches. Static files are served by WhiteNoise before this middleware and keep their own
    caching headers."""

    def process_response(self, request, response):
        patch_cache_control(response, no_store=True, private=True)
        return response
