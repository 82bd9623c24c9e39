"""The client's address, from a source the deployment trusts.

With DJANGO_TRUSTED_PROXY_COUNT=0 (default) it is REMOTE_ADDR. Behind N trusted proxies that
each append to X-Forwarded-For, it is the Nth address from the right: the first hops are
written by the client and cannot be trusted. A hop that is not an IP address (a misconfigured
proxy count lets the client write it: `X-Forwarded-For: =HYPERLINK(...)`) is not used: the
socket address stands in. The answer is always a valid IP address or None.
"""

import ipaddress
import logging

from django.conf import settings
from django.http import HttpRequest

log = logging.getLogger(__name__)


def _valid_ip(value: str | None) -> str | None:
    try:
        return str(ipaddress.ip_address((value or "").strip()))
    except ValueError:
        return None


def client_ip(request: HttpRequest) -> str | None:
    proxies = settings.TRUSTED_PROXY_COUNT
    if proxies > 0:
        hops = [hop.strip() for hop in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",") if hop.strip()]
        if len(hops) >= proxies:
            address = _valid_ip(hops[-proxies])
            if address is not None:
                return address
            log.warning("X-Forwarded-For hop %d from the right is not an IP address; using the socket address", proxies)
    return _valid_ip(request.META.get("REMOTE_ADDR"))
