"""Reads of usage: the limit policy as it applies now, aggregates for dashboards and the API,
abuse cases.

Aggregates come from the daily and hourly roll-ups (one row per user, feature and day), never
from the usage records, and each read is a fixed number of grouped queries: the cost follows
the date range and the number of users, not the history, and a page's query count does not
grow with its rows. Only "who is near a limit now" reads the live limit counters (so the
per-minute limit shows too), and falls back to the roll-ups when the counters cannot be read,
so the dashboards keep working when Redis does not.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from django.db.models import F, OuterRef, Prefetch, QuerySet, Subquery, Sum, Value
from django.db.models.functions import Coalesce
from django.utils import timezone

from copilot_admin.core.versioned_cache import GLOBAL, Read, cached, tenant_scope
from copilot_admin.usage.admission import call_check, current_usage
from copilot_admin.usage.counters import LimitsUnavailable, LimitWindow
from copilot_admin.usage.limits import (
    ABUSE_RULE_FIELDS,
    LIMIT_FIELDS,
    POLICY_FIELDS,
    TENANT_SETTING_FIELDS,
    EffectiveLimits,
)
from copilot_admin.usage.models import (
    AbuseCase,
    AccessStatus,
    CaseKind,
    CaseStatus,
    CopilotAccess,
    DailyUsage,
    HourlyUsage,
    LimitName,
    PlatformLimitPolicy,
    TenantLimitPolicy,
    Webhook,
    WebhookAttempt,
    WebhookDelivery,
)
from tenants.models import Membership, Tenant

# -- the limit policy ---------------------------------------------------------------------------

def platform_policy() -> PlatformLimitPolicy:
    """The platform policy; its defaults (unsaved) until an operator first saves it."""
    return PlatformLimitPolicy.objects.filter(pk=PlatformLimitPolicy.SINGLETON_PK).first() or PlatformLimitPolicy(
        pk=PlatformLimitPolicy.SINGLETON_PK
    )


def tenant_override(tenant: Tenant) -> TenantLimitPolicy | None:
    return TenantLimitPolicy.objects.for_tenant(tenant).first()


def effective_limits(
    tenant: Tenant, *, platform: PlatformLimitPolicy | None = None, override: TenantLimitPolicy | None = None
) -> EffectiveLimits:
    """The limits and abuse rules that apply to the tenant's calls now (`EffectiveLimits.of`)."""
    platform = platform or platform_policy()
    if override is None:
        override = tenant_override(tenant)
    return EffectiveLimits.of(platform=platform, override=override)


def call_limits(tenant: Tenant) -> EffectiveLimits:
    """`effective_limits` for a copilot call, through the versioned cache (a policy change
    takes effect on the next call)."""
    return cached(*call_limits_read(tenant_slug=tenant.slug), lambda: effective_limits(tenant))


def call_limits_read(*, tenant_slug: str) -> Read:
    """The versioned read (key, scopes) of `call_limits`, for a request's read plan."""
    return f"limits:{tenant_slug}", (tenant_scope(tenant_slug), GLOBAL)


def limits_describe(tenant: Tenant) -> dict:
    """What the `limits/` API and page show: effective values, the tenant's own overrides
    (None: follows the default), the platform defaults and maxima, and the abuse rules."""
    platform = platform_policy()
    override = tenant_override(tenant)
    effective = effective_limits(tenant, platform=platform, override=override)
    return {
        **{name: effective.value(name) for name in POLICY_FIELDS},
        "overrides": {name: getattr(override, name, None) if override else None for name in POLICY_FIELDS},
        "platform_defaults": {name: getattr(platform, name) for name in POLICY_FIELDS},
        "platform_maxima": {name: getattr(platform, f"max_{name}") for name in LIMIT_FIELDS},
        "abuse_rules": {name: getattr(platform, name) for name in ABUSE_RULE_FIELDS},
        "warning_thresholds": list(effective.warning_thresholds),
        "alert_digest": effective.alert_digest,
        "anomaly_auto_suspend": effective.anomaly_auto_suspend,
        "platform_warning_thresholds": list(platform.warning_thresholds or []),
        "own_settings": {name: getattr(override, name, None) if override else None for name in TENANT_SETTING_FIELDS},
    }


# -- usage ----------------------------------------------------------------------------------------

DEFAULT_RANGE_DAYS = 30
MAX_RANGE_DAYS = 366
PER_USER_ROWS = 50

_NUMBERS = ("requests", "failed", "filtered", "rate_limited", "prompt_tokens", "completion_tokens")


_TOTALS = (*_NUMBERS, "tokens")


def _sums() -> dict:
    """Sum of every number, under `sum_<name>` (an aggregate may not shadow the field it sums)."""
    sums = {f"sum_{name}": Coalesce(Sum(name), Value(0)) for name in _NUMBERS}
    sums["sum_tokens"] = Coalesce(Sum(F("prompt_tokens") + F("completion_tokens")), Value(0))
    return sums


def _numbers(row: dict) -> dict:
    return {name: row[f"sum_{name}"] for name in _TOTALS}


def default_range(*, today: date | None = None) -> tuple[date, date]:
    """The last 30 days, today (UTC) included."""
    today = today or timezone.now().date()
    return today - timedelta(days=DEFAULT_RANGE_DAYS - 1), today


def usage_summary(
    *,
    tenant: Tenant,
    since: date,
    until: date,
    membership_id: int | None = None,
    feature: str | None = None,
) -> dict:
    """Requests and tokens of the tenant between two days (both included): totals, per day
    (every day of the range, zeros included), per feature and per user (the heaviest
    `PER_USER_ROWS` users by tokens). Four queries."""
    rows = DailyUsage.objects.for_tenant(tenant).filter(day__gte=since, day__lte=until)
    if membership_id is not None:
        rows = rows.filter(membership_id=membership_id)
    if feature:
        rows = rows.filter(feature=feature)
    totals = _numbers(rows.aggregate(**_sums()))
    by_day = {row["day"]: _numbers(row) for row in rows.values("day").annotate(**_sums()).order_by("day")}
    zero = dict.fromkeys(_TOTALS, 0)
    per_day = [
        {"day": day, **by_day.get(day, zero)}
        for day in (since + timedelta(days=offset) for offset in range((until - since).days + 1))
    ]
    per_feature = [
        {"feature": row["feature"], **_numbers(row)}
        for row in rows.values("feature").annotate(**_sums()).order_by("feature")
    ]
    per_user = [
        {
            "user": row["membership_id"],
            "email": row["membership__user__email"],
            "full_name": row["membership__user__full_name"],
            **_numbers(row),
        }
        for row in rows.values("membership_id", "membership__user__email", "membership__user__full_name")
        .annotate(**_sums())
        .order_by("-sum_tokens", "-sum_requests", "membership_id")[:PER_USER_ROWS]
    ]
    return {
        "since": since,
        "until": until,
        "totals": totals,
        "per_day": per_day,
        "per_feature": per_feature,
        "per_user": per_user,
    }


@dataclass(frozen=True)
class NearLimit:
    """A user (or the tenant) at or above the warning threshold of a limit in the current window."""

    limit: str
    used: int
    limit_value: int
    user: int | None = None
    email: str = ""

    @property
    def percent(self) -> int:
        return math.floor(100 * self.used / self.limit_value) if self.limit_value else 100

    def as_dict(self) -> dict:
        return {"limit": self.limit, "user": self.user, "email": self.email, "used": self.used,
                "limit_value": self.limit_value, "percent": self.percent}


def near_limits(*, tenant: Tenant, limits: EffectiveLimits, now: datetime | None = None) -> list[NearLimit]:
    """Who is at or above the (lowest) warning threshold now, from the live limit counters:
    per user, this minute's, this hour's and today's requests and today's tokens; the tenant's
    tokens today. One query for the members and one read of the counters (one Redis round
    trip), whatever the history. Tokens are as reserved (the estimate until a call settles).
    When the counters cannot be read, the roll-ups answer instead (no per-minute limit then)."""
    try:
        return _near_limits_live(tenant=tenant, limits=limits)
    except LimitsUnavailable:
        return near_limits_from_rollups(tenant=tenant, limits=limits, now=now)


def _near_limits_live(*, tenant: Tenant, limits: EffectiveLimits) -> list[NearLimit]:
    percent = limits.warning_threshold_percent
    members = list(
        Membership.objects.for_tenant(tenant).granting_access().values_list("pk", "user__email").order_by("pk")
    )
    windows: list[LimitWindow] = []
    owners: list[tuple[int | None, str]] = []
    for index, (membership_id, email) in enumerate(members):
        check = call_check(membership=Membership(pk=membership_id, tenant_id=tenant.pk), limits=limits,
                           estimated_tokens=0)
        chosen = check.windows if index == 0 else check.windows[:-1]  # the tenant's window once
        for window in chosen:
            windows.append(LimitWindow(key=window.key, window=window.window, limit=window.limit, amount=0,
                                       name=window.name, subject=window.subject))
            owners.append((None, "") if window.name == LimitName.TENANT_TOKENS_PER_DAY else (membership_id, email))
    if not windows:
        return []
    found = []
    for usage, (membership_id, email) in zip(current_usage(windows), owners, strict=True):
        if usage.limit and usage.used_after * 100 >= percent * usage.limit and usage.used_after:
            found.append(NearLimit(limit=usage.name, used=usage.used_after, limit_value=usage.limit,
                                   user=membership_id, email=email))
    return sorted(found, key=lambda item: (-item.percent, item.email, item.limit))


def near_limits_from_rollups(
    *, tenant: Tenant, limits: EffectiveLimits, now: datetime | None = None
) -> list[NearLimit]:
    """Who is at or above the warning threshold from the roll-ups (when the counters are down):
    per user, today's requests and tokens and this hour's requests; the tenant's tokens today.
    Three queries (tokens as used, not as reserved)."""
    now = now or timezone.now()
    percent = limits.warning_threshold_percent

    def threshold(value: int) -> int:
        return max(1, math.ceil(value * percent / 100))

    found: list[NearLimit] = []
    today = DailyUsage.objects.for_tenant(tenant).filter(day=now.date())
    per_user = (
        today.values("membership_id", "membership__user__email")
        .annotate(requests_sum=Sum("requests"), tokens_sum=Sum(F("prompt_tokens") + F("completion_tokens")))
        .order_by("membership__user__email")
    )
    tenant_tokens = 0
    for row in per_user:
        tenant_tokens += row["tokens_sum"] or 0
        for name, used in ((LimitName.USER_REQUESTS_PER_DAY, row["requests_sum"]),
                           (LimitName.USER_TOKENS_PER_DAY, row["tokens_sum"])):
            if (used or 0) >= threshold(limits.value(name)):
                found.append(NearLimit(limit=name, used=used, limit_value=limits.value(name),
                                       user=row["membership_id"], email=row["membership__user__email"]))
    hour = now.replace(minute=0, second=0, microsecond=0)
    busy = (
        HourlyUsage.objects.for_tenant(tenant)
        .filter(hour=hour, requests__gte=threshold(limits.user_requests_per_hour))
        .values_list("membership_id", "membership__user__email", "requests")
        .order_by("membership__user__email")
    )
    for membership_id, email, used in busy:
        found.append(NearLimit(limit=LimitName.USER_REQUESTS_PER_HOUR, used=used,
                               limit_value=limits.user_requests_per_hour, user=membership_id, email=email))
    if tenant_tokens >= threshold(limits.tenant_tokens_per_day):
        found.append(NearLimit(limit=LimitName.TENANT_TOKENS_PER_DAY, used=tenant_tokens,
                               limit_value=limits.tenant_tokens_per_day))
    return sorted(found, key=lambda item: (-item.percent, item.email, item.limit))


def restricted_access(*, tenant: Tenant, now: datetime | None = None) -> QuerySet[CopilotAccess]:
    """Users whose copilot access is suspended (and not yet lapsed) or terminated."""
    now = now or timezone.now()
    return (
        CopilotAccess.objects.for_tenant(tenant)
        .filter(status__in=[AccessStatus.SUSPENDED, AccessStatus.TERMINATED])
        .exclude(status=AccessStatus.SUSPENDED, suspended_until__lte=now)
        .select_related("membership__user")
        .order_by("membership__user__email")
    )


def _with_access_status(cases: QuerySet[AbuseCase], tenant: Tenant) -> QuerySet[AbuseCase]:
    access = CopilotAccess.objects.for_tenant(tenant).filter(membership_id=OuterRef("membership_id"))
    return cases.annotate(
        access_status=Coalesce(Subquery(access.values("status")[:1]), Value(AccessStatus.ACTIVE)),
        access_suspended_until=Subquery(access.values("suspended_until")[:1]),
    )


def abuse_cases(
    *, tenant: Tenant, status: str | None = None, kind: str | None = None, membership_id: int | None = None
) -> QuerySet[AbuseCase]:
    """The tenant's abuse cases, newest first, with the user and the user's access now."""
    cases = AbuseCase.objects.for_tenant(tenant)
    if status:
        cases = cases.filter(status=status)
    if kind:
        cases = cases.filter(kind=kind)
    if membership_id is not None:
        cases = cases.filter(membership_id=membership_id)
    return narrow_cases(cases, tenant=tenant)


def narrow_cases(cases: QuerySet[AbuseCase], *, tenant: Tenant) -> QuerySet[AbuseCase]:
    """What every case list and detail shows: the user, the deciders, the access now."""
    return _with_access_status(
        cases.select_related("membership__user", "opened_by", "resolved_by"), tenant
    ).order_by("-opened_at", "-pk")


def operator_termination_cases(*, status: str | None = CaseStatus.OPEN) -> QuerySet[AbuseCase]:
    """Termination cases of every tenant, for platform operators (who alone reinstate them)."""
    # unscoped(): the platform console lists terminations across tenants; operators are not
    # members of the tenants, and each reinstatement is recorded in the tenant's audit log.
    cases = AbuseCase.objects.unscoped().filter(kind=CaseKind.TERMINATION)
    if status:
        cases = cases.filter(status=status)
    return cases.select_related("tenant", "membership__user", "opened_by", "resolved_by").order_by("-opened_at", "-pk")


def webhook_deliveries(*, tenant: Tenant, webhook: Webhook) -> QuerySet[WebhookDelivery]:
    """A webhook's deliveries, newest first, each with its attempts (two queries per page)."""
    attempts = WebhookAttempt.objects.for_tenant(tenant).order_by("number")
    return (
        WebhookDelivery.objects.for_tenant(tenant).filter(webhook=webhook)
        .prefetch_related(Prefetch("attempt_log", queryset=attempts)).order_by("-created_at", "-pk")
    )
def copilot_access_suspended_until(*, membership) -> datetime | None:
    """When the member's current copilot suspension ends (None: not suspended, or no end)."""
    access = CopilotAccess.objects.for_tenant(membership.tenant).filter(
        membership=membership, status=AccessStatus.SUSPENDED).first()
    return access.suspended_until if access else None
