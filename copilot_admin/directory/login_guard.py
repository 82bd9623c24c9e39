"""Failed-login defences that cannot be turned against the account's owner.

Two layers, checked before any password is:

- **The (account, address) pair** (django-axes, AXES_LOCKOUT_PARAMETERS): AXES_FAILURE_LIMIT
  failures of one account from one address lock that pair for AXES_COOLOFF_TIME. Other
  addresses of the same account, and other accounts from the same address, are not affected.
- **The account, across addresses** (this module's throttle, counters in the cache: Redis when
  configured): once an account has LOGIN_THROTTLE_AFTER_FAILURES failures within
  LOGIN_THROTTLE_WINDOW_SECONDS, each further attempt waits 1 s after the last failure, then 2 s,
  4 s, ... capped at LOGIN_THROTTLE_MAX_SECONDS. While it waits an attempt is refused without
  checking the password; once the wait is over, one attempt per failure count is checked (parallel
  attempts race for it), so a distributed guesser gets one guess per delay. The owner is slowed by
  at most LOGIN_THROTTLE_MAX_SECONDS, never locked out.

Refusals answer 429 with `Retry-After`: the API `{"error": {"code": "locked_out" |
"login_throttled", ...}}`, the page a message that says how long to wait.
"""

import hashlib
import logging
import math
import time
from datetime import timedelta

from axes.models import AccessAttempt
from django.conf import settings
from django.contrib.auth.signals import user_login_failed
from django.core.cache import cache
from django.core.exceptions import PermissionDenied
from django.db.models import Max
from django.dispatch import receiver
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.utils import timezone

from copilot_admin.core.client_ip import client_ip
from copilot_admin.core.errors import error_body

log = logging.getLogger(__name__)


def _now() -> float:
    """The throttle's clock (seconds); tests move it instead of sleeping."""
    return time.time()


def login_username(request, credentials: dict | None = None) -> str | None:
    """AXES_USERNAME_CALLABLE: the account a login attempt names, case-folded so that
    `Admin@x` and `admin@x` share one failure count."""
    credentials = credentials or {}
    raw = credentials.get("email") or credentials.get("username")
    if raw is None and request is not None:
        raw = request.POST.get("email") or request.POST.get("username")
    return raw.strip().lower() if isinstance(raw, str) else None


def _key(kind: str, account: str) -> str:
    digest = hashlib.sha256(account.encode()).hexdigest()
    return f"{settings.LOGIN_THROTTLE_KEY_PREFIX}{kind}:{digest}"


def login_throttle_delay(failures: int) -> int:
    """Seconds each attempt on an account with `failures` recent failures waits after the last
    one: 0 below LOGIN_THROTTLE_AFTER_FAILURES, then 1, 2, 4, ... up to LOGIN_THROTTLE_MAX_SECONDS."""
    over = failures - settings.LOGIN_THROTTLE_AFTER_FAILURES
    if over < 0:
        return 0
    return min(2 ** min(over, 32), settings.LOGIN_THROTTLE_MAX_SECONDS)


def login_throttle_admit(account: str) -> int:
    """0 when an attempt on `account` may check its password now, else the seconds to wait.

    Without a cache (Redis down) attempts are admitted: the pair lockout, in the database, holds.
    """
    try:
        failures = cache.get(_key("failures", account), 0)
        delay = login_throttle_delay(failures)
        if not delay:
            return 0
        wait_until = cache.get(_key("until", account), 0)
        now = _now()
        if now < wait_until:
            return max(1, math.ceil(wait_until - now))
        # One password check per failure count: attempts arriving together race for it.
        if not cache.add(_key(f"slot-{failures}", account), 1, timeout=delay):
            return delay
        return 0
    except Exception:  # noqa: BLE001 - any cache failure: admit, logged
        log.warning("Login throttle: cache unavailable, attempt admitted", exc_info=True)
        return 0


def login_throttle_failure(account: str) -> None:
    """Count a failed password check of `account` (the window slides with each failure)."""
    window = settings.LOGIN_THROTTLE_WINDOW_SECONDS
    key = _key("failures", account)
    try:
        cache.add(key, 0, timeout=window)
        try:
            failures = cache.incr(key)
        except ValueError:  # expired between add and incr
            cache.set(key, failures := 1, timeout=window)
        cache.touch(key, window)
        delay = login_throttle_delay(failures)
        if delay:
            cache.set(_key("until", account), _now() + delay, timeout=window)
    except Exception:  # noqa: BLE001 - any cache failure: not counted, logged
        log.warning("Login throttle: cache unavailable, failure not counted", exc_info=True)


def login_throttle_reset(account: str) -> None:
    """Forget the failures of `account` (an administrator lifted its lockout)."""
    try:
        cache.delete_many([_key("failures", account), _key("until", account)])
    except Exception:  # noqa: BLE001
        log.warning("Login throttle: cache unavailable, reset skipped", exc_info=True)


class LoginThrottleBackend:
    """Authentication backend placed between axes' pair lockout and the password check: refuses,
    without checking the password, an attempt on an account that is inside its delay. It never
    returns a user and has no `get_user` (so sessions keep naming the backend that logged them in)."""

    def authenticate(self, request, username=None, password=None, **credentials):
        if request is None:
            return None
        account = login_username(request, {"username": username, **credentials})
        if not account:
            return None
        retry_after = login_throttle_admit(account)
        if retry_after:
            request.login_throttle_retry_after = retry_after
            # No password was checked: axes must not count this against the pair (it skips
            # counting for requests it considers locked out).
            request.axes_locked_out = True
            raise PermissionDenied("login throttled")
        request.login_password_checked = account
        return None


@receiver(user_login_failed, dispatch_uid="login_throttle_failure")
def _count_failure(sender, credentials, request=None, **kwargs):
    account = getattr(request, "login_password_checked", None)
    if account:
        login_throttle_failure(account)


def _pair_retry_after(request: HttpRequest, credentials: dict | None) -> int:
    """Seconds until the (account, address) pair's lockout ends."""
    account = login_username(request, credentials)
    last = AccessAttempt.objects.filter(username=account, ip_address=client_ip(request)).aggregate(
        last=Max("attempt_time")
    )["last"]
    cooloff: timedelta = settings.AXES_COOLOFF_TIME
    if last is None:
        return math.ceil(cooloff.total_seconds())
    return max(1, math.ceil((last + cooloff - timezone.now()).total_seconds()))


def _wait_text(seconds: int) -> str:
    if seconds < 120:
        return f"{seconds} second{'s' if seconds != 1 else ''}"
    return f"{math.ceil(seconds / 60)} minutes"


def lockout_response(request, original_response=None, credentials=None) -> HttpResponse:
    """AXES_LOCKOUT_CALLABLE: 429 with Retry-After; the API in the contract's error shape, pages
    a message that says how long to wait."""
    retry_after = getattr(request, "login_throttle_retry_after", None)
    if retry_after:
        code = "login_throttled"
        message = f"Too many failed logins for this account; wait {_wait_text(retry_after)} and try again."
    else:
        code = "locked_out"
        retry_after = _pair_retry_after(request, credentials)
        message = f"Too many failed logins from this address; try again in {_wait_text(retry_after)}."
    if request.path.startswith("/api/"):
        response = JsonResponse(error_body(code, message), status=429)
    else:
        response = render(
            request, "registration/locked_out.html",
            {"code": code, "message": message, "wait": _wait_text(retry_after)}, status=429,
        )
    response["Retry-After"] = str(retry_after)
    return response
