"""Where a webhook may point, and the one HTTP request of a delivery attempt.

Server-side request forgery is refused twice: when a webhook is saved (`webhook_url_check`)
and right before every request, when the host is resolved again and the connection goes to
the address just checked (never a second lookup that a DNS rebinding could answer
differently). Redirects are not followed: a 3xx answer is a failed attempt.

Accepted: `https://` URLs whose host resolves only to public addresses. Refused: any address
that is loopback, private (RFC 1918, IPv6 unique-local), link-local (cloud metadata
169.254.169.254 and fd00:ec2::254 included), carrier-grade NAT (100.64.0.0/10), unspecified,
multicast or reserved, and IPv6 forms that carry such an IPv4 address (IPv4-mapped, 6to4,
Teredo, NAT64). With WEBHOOK_ALLOW_HTTP_LOOPBACK (development and tests; refused in production)
`http://` and loopback addresses are allowed too, and nothing else.
"""

from __future__ import annotations

import ipaddress
import socket
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

import urllib3
from django.conf import settings

from copilot_admin.core.errors import ApplicationError

METADATA_ADDRESSES = frozenset({ipaddress.ip_address("169.254.169.254"), ipaddress.ip_address("fd00:ec2::254")})
SHARED_ADDRESS_SPACE = ipaddress.ip_network("100.64.0.0/10")  # carrier-grade NAT, RFC 6598
NAT64 = ipaddress.ip_network("64:ff9b::/96")
MAX_RESPONSE_BYTES = 4096  # what is read of an answer (never stored: only its status)


class WebhookUrlRefused(ApplicationError):
    """The URL may not be called: the reason names the rule."""

    def __init__(self, reason: str):
        super().__init__(
            f"This webhook URL is not allowed: {reason}.", code="webhook_url_refused", fields={"url": [reason]}
        )
        self.reason = reason


class WebhookTransportError(Exception):
    """No HTTP answer: connection refused or reset, timeout, TLS failure. Retried."""


@dataclass(frozen=True)
class Target:
    """A checked URL: where to connect (`address`) and what to ask for (`host`, `path`)."""

    scheme: str
    host: str
    port: int
    path: str
    address: str


def address_refusal(address: str | ipaddress.IPv4Address | ipaddress.IPv6Address) -> str | None:
    """Why a webhook may not connect to `address` (None: it is a public address)."""
    ip = ipaddress.ip_address(address)
    if ip in METADATA_ADDRESSES:
        return f"{ip} is a cloud metadata address"
    if ip.version == 6:
        embedded = ip.ipv4_mapped or ip.sixtofour or (ip.teredo[1] if ip.teredo else None)
        if embedded is None and ip in NAT64:
            embedded = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
        if embedded is not None:
            reason = address_refusal(embedded)
            return f"{ip} carries {reason}" if reason else None
    if ip.is_loopback:
        return f"{ip} is a loopback address"
    if ip.is_link_local:
        return f"{ip} is a link-local address"
    if ip.version == 4 and ip in SHARED_ADDRESS_SPACE:
        return f"{ip} is a carrier-grade NAT address"
    if ip.is_unspecified or ip.is_multicast or ip.is_reserved:
        return f"{ip} is not a unicast address"
    if ip.is_private:
        return f"{ip} is a private address"
    if not ip.is_global:
        return f"{ip} is not a public address"
    return None


def _resolve(host: str, port: int) -> list[str]:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError, OSError) as exc:
        raise WebhookUrlRefused(f"{host} does not resolve") from exc
    addresses = []
    for info in infos:
        address = info[4][0].split("%", 1)[0]  # an IPv6 scope id is not part of the address
        if address not in addresses:
            addresses.append(address)
    if not addresses:
        raise WebhookUrlRefused(f"{host} does not resolve")
    return addresses


def webhook_url_check(url: str) -> Target:
    """Check `url` now (resolving its host) and answer where to connect; raise
    `WebhookUrlRefused` when any rule refuses it. Every address the name resolves to must be
    allowed, not only the first."""
    allow_loopback = settings.WEBHOOK_ALLOW_HTTP_LOOPBACK
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise WebhookUrlRefused("the URL cannot be read") from exc
    scheme = (parts.scheme or "").lower()
    if scheme != "https" and not (scheme == "http" and allow_loopback):
        raise WebhookUrlRefused("only https:// URLs are accepted")
    if parts.username is not None or parts.password is not None:
        raise WebhookUrlRefused("credentials in the URL are not accepted")
    host = (parts.hostname or "").rstrip(".")
    if not host:
        raise WebhookUrlRefused("the URL has no host")
    port = port or (443 if scheme == "https" else 80)
    addresses = _resolve(host, port)
    for address in addresses:
        if allow_loopback and ipaddress.ip_address(address).is_loopback:
            continue
        if scheme == "http":
            raise WebhookUrlRefused("http:// is only accepted to loopback addresses (development)")
        reason = address_refusal(address)
        if reason:
            raise WebhookUrlRefused(reason)
    path = parts.path or "/"
    if parts.query:
        path = f"{path}?{parts.query}"
    return Target(scheme=scheme, host=host, port=port, path=path, address=addresses[0])


def _host_header(target: Target) -> str:
    host = f"[{target.host}]" if ":" in target.host else target.host
    default = 443 if target.scheme == "https" else 80
    return host if target.port == default else f"{host}:{target.port}"


def webhook_post(target: Target, *, body: bytes, headers: dict[str, str], timeout: float) -> tuple[int, int]:
    """POST `body` to the checked `target`, connecting to its checked address (TLS still
    verifies the certificate for the host name). Answers (HTTP status, latency in ms); raises
    `WebhookTransportError` when no answer came. Redirects are never followed; at most
    MAX_RESPONSE_BYTES of the answer are read, and none of it is kept."""
    pool_kwargs = {"timeout": urllib3.Timeout(connect=timeout, read=timeout), "retries": False, "maxsize": 1}
    if target.scheme == "https":
        pool = urllib3.HTTPSConnectionPool(
            target.address,
            target.port,
            server_hostname=target.host,
            assert_hostname=target.host,
            cert_reqs="CERT_REQUIRED",
            **pool_kwargs,
        )
    else:
        pool = urllib3.HTTPConnectionPool(target.address, target.port, **pool_kwargs)
    started = time.monotonic()
    try:
        response = pool.urlopen(
            "POST",
            target.path,
            body=body,
            headers={**headers, "Host": _host_header(target)},
            redirect=False,
            retries=False,
            preload_content=False,
            assert_same_host=False,
        )
        try:
            response.read(MAX_RESPONSE_BYTES)
        except urllib3.exceptions.HTTPError:
            pass  # the status is the answer; a broken body does not change it
        finally:
            response.release_conn()
        return response.status, int((time.monotonic() - started) * 1000)
    except urllib3.exceptions.HTTPError as exc:
        raise WebhookTransportError(f"{type(exc).__name__}: {exc}"[:200]) from exc
    finally:
        pool.close()
