"""Middleware of the kernel: answers Django produces are never cached by browsers or proxies."""

from django.utils.cache import patch_cache_control
from django.utils.deprecation import MiddlewareMixin


class NoStoreMiddleware(MiddlewareMixin):
    """`Cache-Control: no-store` on every answer Django produces: pages (a member's data, CSRF
    tokens) and API responses (bearer-authenticated data) must stay out of browser and proxy
    caches. Static files are served by WhiteNoise before this middleware and keep their own
    caching headers."""

    def process_response(self, request, response):
        patch_cache_control(response, no_store=True, private=True)
        return response


