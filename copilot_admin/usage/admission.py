"""Admission: whether one copilot call fits within its limits, and settling what it used.

A call is checked against five windows at once: the user's requests per minute, hour and day,
the user's tokens per day and the tenant's tokens per day. Each window carries the name of
the limit it stands for. One atomic step of the counter engine (`counters.py`), whose cost
does not depend on history, reserves one request and the estimated tokens in all of them or
in none. The admitted call holds its `Reservation` until it is settled, once:

- `reserve` raises `RateLimitExceeded` (429 `rate_limited`, Retry-After, naming the limit that
  keeps the caller waiting longest), or `LimitsUnavailable` (503) unless
  `USAGE_LIMITS_FAIL_OPEN` admits the call uncounted. Both are logged.
- `settle` corrects the token windows to the tokens really used, releases the whole
  reservation when nothing was sent, or keeps the estimate when the tokens used are unknown
  (the caller went away mid-call). It never raises.

What follows from a refusal or a crossed threshold (a strike, a warning) is not decided here:
`services.limits_reserve` and `services.limits_settle` record it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from copilot_admin.core.errors import ApplicationError
from copilot_admin.core.humanize import duration_words
from copilot_admin.core.timezones import clock_words
from copilot_admin.usage.counters import (
    LimitCheck,
    LimitsUnavailable,
    LimitWindow,
    Window,
    WindowUsage,
    get_counter_backend,
    limits_fail_open,
)
from copilot_admin.usage.limits import LIMIT_WINDOWS, TOKEN_LIMITS, EffectiveLimits
from copilot_admin.usage.models import LimitName
from tenants.models import Membership

logger = logging.getLogger(__name__)


class RateLimitExceeded(ApplicationError):
    """A usage limit refuses the call; `retry_after` is the wait in whole seconds and `limit`
    names the limit that refused (a `LimitName` value: `user_requests_per_minute`, ...)."""

    status_code = 429
    code = "rate_limited"

    def __init__(
        self, message: str = "A usage limit was reached. Try again later.", *, retry_after: int = 1, limit: str = ""
    ) -> None:
        super().__init__(message)
        self.retry_after = max(1, int(retry_after))
        self.limit = limit


@dataclass(frozen=True)
class Reservation:
    """One admitted call's hold on the limits, from `reserve` until it is settled.

    `windows` are the counter windows reserved, each naming its limit; empty when the counters
    were unavailable and `USAGE_LIMITS_FAIL_OPEN` admitted the call uncounted. `limits` are
    the limits the call was admitted under (their warning threshold applies when settling).
    """

    membership: Membership
    limits: EffectiveLimits
    estimated_tokens: int
    windows: tuple[WindowUsage, ...] = ()


def user_key(membership_id: int, unit: str) -> str:
    return f"u:{membership_id}:{unit}"


def tenant_key(tenant_id: int) -> str:
    return f"t:{tenant_id}:tokens"


def tenant_subject(tenant_id: int) -> str:
    """Whom a call's windows belong to: its tenant, the user's windows too.

    So every counter of one reservation shares one Redis Cluster slot, and tenants spread over slots.
    """
    return f"t:{tenant_id}"


def call_check(*, membership: Membership, limits: EffectiveLimits, estimated_tokens: int) -> LimitCheck:
    """The five windows one copilot call must fit in, each named after its limit."""
    requests = user_key(membership.pk, "requests")
    tokens = max(0, int(estimated_tokens))

    def window(name: str, key: str, span: Window, amount: int = 1) -> LimitWindow:
        return LimitWindow(
            key=key, window=span, limit=limits.value(name), amount=amount, name=name,
            subject=tenant_subject(membership.tenant_id),
        )

    return LimitCheck(
        windows=(
            window(LimitName.USER_REQUESTS_PER_MINUTE, requests, Window.MINUTE),
            window(LimitName.USER_REQUESTS_PER_HOUR, requests, Window.HOUR),
            window(LimitName.USER_REQUESTS_PER_DAY, requests, Window.DAY),
            window(LimitName.USER_TOKENS_PER_DAY, user_key(membership.pk, "tokens"), Window.DAY, tokens),
            window(LimitName.TENANT_TOKENS_PER_DAY, tenant_key(membership.tenant_id), Window.DAY, tokens),
        )
    )


# How each limit reads in a sentence: (the period, what is counted, who).
_LIMIT_WORDS = {
    LimitName.USER_REQUESTS_PER_MINUTE: ("this minute's", "requests", "your"),
    LimitName.USER_REQUESTS_PER_HOUR: ("this hour's", "requests", "your"),
    LimitName.USER_REQUESTS_PER_DAY: ("today's", "requests", "your"),
    LimitName.USER_TOKENS_PER_DAY: ("today's", "tokens", "your"),
    LimitName.TENANT_TOKENS_PER_DAY: ("today's", "tokens", "your organization's"),
}


def _refusal_message(limit: str, value: int, retry_after: int, *, now: datetime | None = None) -> str:
    """The refusal as a sentence people read ("You have reached today's limit of 6 requests.
    It resets at 00:00 UTC (in 2 h 01 min)."); the API's `Retry-After` carries the seconds.
    The reset is told in the active zone: the user's own on pages ("01:00 CET"), UTC in the API."""
    period, unit, whose = _LIMIT_WORDS.get(limit, ("the", "requests", "your"))
    now = now or datetime.now(tz=UTC)
    resets = now + timedelta(seconds=retry_after)
    subject = "You have" if whose == "your" else "Your organization has"
    return (
        f"{subject} reached {period} limit of {value:,} {unit}. "
        f"It resets at {clock_words(resets)} (in {duration_words(resets - now)})."
    )


def reserve(*, membership: Membership, limits: EffectiveLimits, estimated_tokens: int, feature: str) -> Reservation:
    """Reserve one call against every limit that applies, atomically, all or nothing.

    Raises `RateLimitExceeded` (its `limit` names the refusing limit) or `LimitsUnavailable`;
    then nothing was reserved.
    """
    check = call_check(membership=membership, limits=limits, estimated_tokens=estimated_tokens)
    try:
        result = get_counter_backend().reserve(check=check)
    except LimitsUnavailable:
        if limits_fail_open():
            logger.warning(
                "Limits unavailable: copilot call admitted without a limit check (USAGE_LIMITS_FAIL_OPEN) "
                "tenant=%s membership=%s feature=%s", membership.tenant_id, membership.pk, feature,
            )
            return Reservation(membership=membership, limits=limits, estimated_tokens=estimated_tokens)
        logger.error(
            "Limits unavailable: copilot call refused with 503 limits_unavailable tenant=%s membership=%s feature=%s",
            membership.tenant_id, membership.pk, feature,
        )
        raise
    if not result.allowed:
        # The window that keeps the caller waiting longest is the one to name.
        binding = max(result.exceeded, key=lambda usage: (usage.retry_after, usage.window.seconds))
        logger.info(
            "Copilot call refused by limit %s tenant=%s membership=%s feature=%s retry_after=%s",
            binding.name, membership.tenant_id, membership.pk, feature, result.retry_after,
        )
        raise RateLimitExceeded(
            _refusal_message(binding.name, binding.limit, result.retry_after),
            retry_after=result.retry_after,
            limit=binding.name,
        )
    return Reservation(
        membership=membership, limits=limits, estimated_tokens=estimated_tokens, windows=result.windows
    )


def current_usage(windows) -> tuple[WindowUsage, ...]:
    """The live usage of `windows` (LimitWindows) on the counters the calls are admitted by,
    changing nothing; raises `LimitsUnavailable` when they cannot be read."""
    return get_counter_backend().current(windows=windows)


def limit_window_start(name: str) -> datetime | None:
    """The start of the current window of limit `name` on the counters' clock (the bucket a
    refusal by that limit was counted in, but for a refusal in the last instant of a window),
    or None for an unknown name. Strikes are kept once per limit and window by it."""
    window = LIMIT_WINDOWS.get(name)
    if window is None:
        return None
    now = get_counter_backend().now()
    return datetime.fromtimestamp(int(now // window.seconds) * window.seconds, tz=UTC)


def settle(
    *,
    reservation: Reservation,
    sent: bool,
    prompt_tokens: int = 0,
    completion_tokens: int = 0,
    keep_estimate: bool = False,
) -> tuple[WindowUsage, ...]:
    """After the call: the token windows to the tokens used, the whole reservation given back
    when nothing was sent, or (`keep_estimate`: tokens unknown) the estimate left counted.

    Returns the windows a correction moved (for threshold warnings). Never raises (the counter
    engine logs its own failures).
    """
    if not reservation.windows:
        return ()  # admitted uncounted: nothing to correct
    if keep_estimate and sent:
        return ()  # the reservation already counts the request and the estimated tokens
    try:
        backend = get_counter_backend()
        if not sent:
            backend.release(windows=reservation.windows)
            return ()
        used = max(0, int(prompt_tokens or 0)) + max(0, int(completion_tokens or 0))
        return backend.reconcile(
            windows=reservation.windows,
            actual={usage.key: used for usage in reservation.windows if usage.name in TOKEN_LIMITS},
        )
    except Exception:  # noqa: BLE001 - an answered call must not turn into an error here
        logger.exception("Settling a limits reservation failed (membership %s).", reservation.membership.pk)
        return ()
