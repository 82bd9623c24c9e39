"""The client's address, from a source the deployment trusts.

With DJANGO_TRUSTED_PROXY_COUNT=0 (default) it is REMOTE_ADDR. Behind N trusted proxies that
each append to X-Forwarded-For, it is the Nth address from the right: the first hops are
written by the client and cannot be trusted.
"""

from django.conf import settings
from django.http import HttpRequest


def client_ip(request: HttpRequest) -> str | None:
    proxies = settings.TRUSTED_PROXY_COUNT
    if proxies > 0:
        hops = [hop.strip() for hop in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",") if hop.strip()]
        if len(hops) >= proxies:
            return hops[-proxies]
    return request.META.get("REMOTE_ADDR")


def login_username(request, credentials: dict | None = None) -> str | None:
    """AXES_USERNAME_CALLABLE: the account a login attempt names, case-folded so that
    `Admin@x` and `admin@x` share one failure count."""
    credentials = credentials or {}
    raw = credentials.get("email") or credentials.get("username")
    if raw is None and request is not None:
        raw = request.POST.get("email") or request.POST.get("username")
    return raw.strip().lower() if isinstance(raw, str) else None


def lockout_response(request, original_response=None, credentials=None):
    """AXES_LOCKOUT_CALLABLE: the API gets the contract's error shape, pages the lockout page."""
    from django.http import JsonResponse
    from django.shortcuts import render

    if request.path.startswith("/api/"):
        body = {"error": {"code": "locked_out", "message": "Too many failed logins; try again later."}}
        return JsonResponse(body, status=429)
    return render(request, "registration/locked_out.html", status=429)
