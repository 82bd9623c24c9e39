"""Limit policies and the per-call limit check.

Policy: the platform's policy (`PlatformLimitPolicy`, one row) holds the defaults, the
maxima a tenant may set and the abuse rules; a tenant's `TenantLimitPolicy` overrides any of
the six contract fields within the maxima. `effective_limits(tenant)` is what applies now
(an override above a maximum that was lowered later is capped at the maximum).

Per call (through the hooks in `services.py`):
- `call_admit` reserves one request and the estimated tokens in every window that applies
  (user per minute / hour / day, user tokens per day, tenant tokens per day) with one atomic
  step of the counter engine, whose cost does not depend on history. A refusal raises
  `RateLimitExceeded` (429 `rate_limited`, Retry-After, the limit's name) and counts as a
  strike; unavailable counters raise `LimitsUnavailable` (503) unless
  `USAGE_LIMITS_FAIL_OPEN` admits the call uncounted. Both are logged.
- `call_settle` corrects the token windows to what the call really used, releases the
  reservation when nothing was sent, or keeps the estimate when the tokens used are unknown
  (the caller went away mid-call). It never raises.
- Whenever a reservation or a correction moves a window across the warning threshold, a
  `LimitWarning` row is written; its unique constraint (limit, subject, window) makes the
  warning e-mails go out once per limit and window, whatever the concurrency.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass

from django.db import IntegrityError, transaction

from copilot_admin.access.permissions import Perm
from copilot_admin.access.policy import has_permission
from copilot_admin.audit.services import audit_change_record, audit_snapshot
from copilot_admin.core.errors import ApplicationError, PermissionRefused
from copilot_admin.usage.counters import (
    LimitCheck,
    LimitsUnavailable,
    LimitWindow,
    ReserveResult,
    Window,
    WindowUsage,
    get_counter_backend,
    limits_fail_open,
)
from copilot_admin.usage.errors import RateLimitExceeded
from copilot_admin.usage.models import LimitName, LimitWarning, PlatformLimitPolicy, StrikeKind, TenantLimitPolicy
from tenants.models import Membership, Tenant, User

logger = logging.getLogger(__name__)

LIMIT_FIELDS: tuple[str, ...] = tuple(LimitName.values)
POLICY_FIELDS: tuple[str, ...] = (*LIMIT_FIELDS, "warning_threshold_percent")
MAXIMUM_FIELDS: tuple[str, ...] = tuple(f"max_{name}" for name in LIMIT_FIELDS)
ABUSE_RULE_FIELDS: tuple[str, ...] = (
    "strike_limit",
    "strike_window_minutes",
    "suspension_minutes",
    "suspensions_to_terminate",
    "termination_window_days",
    "review_near_limit_percent",
    "review_sustained_hours",
    "review_sustained_days",
)
PLATFORM_FIELDS: tuple[str, ...] = (*POLICY_FIELDS, *MAXIMUM_FIELDS, *ABUSE_RULE_FIELDS)
PERCENT_FIELDS = frozenset({"warning_threshold_percent", "review_near_limit_percent"})

# Which window each limit counts in, and the unit its value is in.
LIMIT_WINDOWS: dict[str, Window] = {
    LimitName.USER_REQUESTS_PER_MINUTE: Window.MINUTE,
    LimitName.USER_REQUESTS_PER_HOUR: Window.HOUR,
    LimitName.USER_REQUESTS_PER_DAY: Window.DAY,
    LimitName.USER_TOKENS_PER_DAY: Window.DAY,
    LimitName.TENANT_TOKENS_PER_DAY: Window.DAY,
}
USER_LIMITS = frozenset(LIMIT_FIELDS) - {LimitName.TENANT_TOKENS_PER_DAY}


@dataclass(frozen=True)
class EffectiveLimits:
    """The limits and abuse rules that apply to one tenant's calls now."""

    user_requests_per_minute: int
    user_requests_per_hour: int
    user_requests_per_day: int
    user_tokens_per_day: int
    tenant_tokens_per_day: int
    warning_threshold_percent: int
    strike_limit: int
    strike_window_minutes: int
    suspension_minutes: int
    suspensions_to_terminate: int
    termination_window_days: int
    review_near_limit_percent: int
    review_sustained_hours: int
    review_sustained_days: int

    def value(self, name: str) -> int:
        return getattr(self, str(name))

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


# -- reading the policy -------------------------------------------------------------------

def platform_policy() -> PlatformLimitPolicy:
    """The platform policy; its defaults (unsaved) until an operator first saves it."""
    return PlatformLimitPolicy.objects.filter(pk=PlatformLimitPolicy.SINGLETON_PK).first() or PlatformLimitPolicy(
        pk=PlatformLimitPolicy.SINGLETON_PK
    )


def platform_policy_ensure() -> PlatformLimitPolicy:
    """The platform policy row, written with the defaults if it does not exist yet (idempotent;
    the writing is recorded in the platform's audit log, by the system)."""
    with transaction.atomic():
        policy, created = PlatformLimitPolicy.objects.get_or_create(pk=PlatformLimitPolicy.SINGLETON_PK)
        if created:
            audit_change_record(actor=None, tenant=None, instance=policy)
    return policy


def tenant_override(tenant: Tenant) -> TenantLimitPolicy | None:
    return TenantLimitPolicy.objects.for_tenant(tenant).first()


def effective_limits(
    tenant: Tenant, *, platform: PlatformLimitPolicy | None = None, override: TenantLimitPolicy | None = None
) -> EffectiveLimits:
    """The tenant's override where set, else the platform default; never above a platform maximum."""
    platform = platform or platform_policy()
    if override is None:
        override = tenant_override(tenant)
    values: dict[str, int] = {}
    for name in POLICY_FIELDS:
        own = getattr(override, name, None) if override is not None else None
        value = getattr(platform, name) if own is None else own
        if name in LIMIT_FIELDS:
            value = min(value, getattr(platform, f"max_{name}"))
        values[name] = int(value)
    values.update({name: int(getattr(platform, name)) for name in ABUSE_RULE_FIELDS})
    return EffectiveLimits(**values)


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
    }


# -- writing the policy -------------------------------------------------------------------

_COLUMN_MAXIMA = {
    "PositiveSmallIntegerField": 32_767,
    "PositiveIntegerField": 2_147_483_647,
    "PositiveBigIntegerField": 9_223_372_036_854_775_807,
}


def column_maximum(name: str) -> int:
    """The largest value the platform policy's column `name` stores."""
    return _COLUMN_MAXIMA[PlatformLimitPolicy._meta.get_field(name).get_internal_type()]


def _checked_int(name: str, value, *, low: int, high: int | None, errors: dict) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int):
        errors[name] = ["must be a whole number"]
        return None
    if value < low or (high is not None and value > high):
        errors[name] = [f"must be between {low} and {high}" if high is not None else f"must be at least {low}"]
        return None
    return value


def _refuse_unknown(changes: Mapping, allowed: Iterable[str]) -> None:
    unknown = sorted(set(changes) - set(allowed))
    if unknown:
        raise ApplicationError(
            f"Unknown field(s): {', '.join(unknown)}.", fields={name: ["unknown field"] for name in unknown}
        )


@transaction.atomic
def tenant_limits_update(*, actor: Membership, changes: Mapping[str, int | None]) -> TenantLimitPolicy:
    """Set (a number) or clear (None: follow the platform default) the tenant's overrides.

    Each limit must lie between 1 and the platform maximum, the warning threshold between 1
    and 100 percent; otherwise nothing changes (400 with the offending fields). The change is
    recorded with its actor in the tenant's audit log.
    """
    if not has_permission(actor, Perm.LIMITS):
        raise PermissionRefused("Your security role does not allow changing usage limits.")
    _refuse_unknown(changes, POLICY_FIELDS)
    platform = platform_policy()
    errors: dict[str, list[str]] = {}
    cleaned: dict[str, int | None] = {}
    for name, value in changes.items():
        if value is None:
            cleaned[name] = None
            continue
        high = 100 if name in PERCENT_FIELDS else getattr(platform, f"max_{name}")
        cleaned[name] = _checked_int(name, value, low=1, high=high, errors=errors)
    if errors:
        first = next(iter(errors))
        raise ApplicationError(
            f"{first} {errors[first][0]} (the platform maximum is the upper bound).",
            code="limit_out_of_range",
            fields=errors,
        )
    tenant = actor.tenant
    policies = TenantLimitPolicy.objects.for_tenant(tenant)
    override = policies.select_for_update().first()
    if override is None:
        try:
            with transaction.atomic():
                override = policies.create(tenant=tenant, **cleaned)
                audit_change_record(actor=actor, tenant=tenant, instance=override)
                return override
        except IntegrityError:  # created concurrently
            override = policies.select_for_update().get()
    changed = [name for name, value in cleaned.items() if getattr(override, name) != value]
    if changed:
        before = audit_snapshot(override)
        for name in changed:
            setattr(override, name, cleaned[name])
        override.save()
        audit_change_record(actor=actor, tenant=tenant, instance=override, before=before)
    return override


@transaction.atomic
def platform_limits_update(*, actor: User, changes: Mapping[str, int]) -> PlatformLimitPolicy:
    """Platform operators set the defaults, the maxima and the abuse rules.

    Every value is a whole number of at least 1 (percentages at most 100) and every default
    at most its maximum. Tenants' overrides above a lowered maximum are capped when read.
    """
    if not getattr(actor, "is_platform_operator", False):
        raise PermissionRefused("Only platform operators change the platform limit policy.")
    _refuse_unknown(changes, PLATFORM_FIELDS)
    policy, created = PlatformLimitPolicy.objects.select_for_update().get_or_create(pk=PlatformLimitPolicy.SINGLETON_PK)
    before = None if created else audit_snapshot(policy)
    errors: dict[str, list[str]] = {}
    for name, value in changes.items():
        high = 100 if name in PERCENT_FIELDS else column_maximum(name)
        checked = _checked_int(name, value, low=1, high=high, errors=errors)
        if checked is not None:
            setattr(policy, name, checked)
    for name in LIMIT_FIELDS:
        if name not in errors and getattr(policy, name) > getattr(policy, f"max_{name}"):
            errors[name] = [f"the default must not exceed the maximum ({getattr(policy, f'max_{name}')})"]
    if errors:
        first = next(iter(errors))
        raise ApplicationError(f"{first}: {errors[first][0]}.", code="limit_out_of_range", fields=errors)
    policy.save()
    # The platform policy belongs to no tenant: its changes are in the platform's audit log.
    audit_change_record(actor=actor, tenant=None, instance=policy, before=before)
    return policy


# -- the per-call check ---------------------------------------------------------------------

def limit_name_of(usage: WindowUsage | LimitWindow) -> str:
    """The policy field a counter window stands for."""
    if usage.key.startswith("t:"):
        return LimitName.TENANT_TOKENS_PER_DAY
    if usage.key.endswith(":tokens"):
        return LimitName.USER_TOKENS_PER_DAY
    return {
        Window.MINUTE: LimitName.USER_REQUESTS_PER_MINUTE,
        Window.HOUR: LimitName.USER_REQUESTS_PER_HOUR,
        Window.DAY: LimitName.USER_REQUESTS_PER_DAY,
    }[usage.window]


def user_key(membership_id: int, unit: str) -> str:
    return f"u:{membership_id}:{unit}"


def tenant_key(tenant_id: int) -> str:
    return f"t:{tenant_id}:tokens"


def call_check(*, membership: Membership, limits: EffectiveLimits, estimated_tokens: int) -> LimitCheck:
    """The five windows one copilot call must fit in."""
    requests = user_key(membership.pk, "requests")
    tokens = max(0, int(estimated_tokens))
    return LimitCheck(
        windows=(
            LimitWindow(key=requests, window=Window.MINUTE, limit=limits.user_requests_per_minute),
            LimitWindow(key=requests, window=Window.HOUR, limit=limits.user_requests_per_hour),
            LimitWindow(key=requests, window=Window.DAY, limit=limits.user_requests_per_day),
            LimitWindow(key=user_key(membership.pk, "tokens"), window=Window.DAY, limit=limits.user_tokens_per_day,
                        amount=tokens),
            LimitWindow(key=tenant_key(membership.tenant_id), window=Window.DAY, limit=limits.tenant_tokens_per_day,
                        amount=tokens),
        )
    )


@dataclass(frozen=True)
class Admission:
    """A call admitted by the limits: what was reserved, so that settling corrects exactly it.

    `reservation` is None when the counters were unavailable and `USAGE_LIMITS_FAIL_OPEN`
    admitted the call without counting it.
    """

    membership: Membership
    limits: EffectiveLimits
    reservation: ReserveResult | None


def _refusal_message(limit: str, value: int, retry_after: int) -> str:
    return f"Usage limit reached: {limit} ({value}). Try again in {retry_after} s."


def call_admit(*, membership: Membership, feature: str, estimated_tokens: int) -> Admission:
    """Reserve one call against every limit that applies, atomically, all or nothing.

    Raises `RateLimitExceeded` (after recording the strike) or `LimitsUnavailable`.
    """
    from copilot_admin.usage import abuse

    limits = effective_limits(membership.tenant)
    check = call_check(membership=membership, limits=limits, estimated_tokens=estimated_tokens)
    try:
        result = get_counter_backend().reserve(check=check)
    except LimitsUnavailable:
        if limits_fail_open():
            logger.warning(
                "Limits unavailable: copilot call admitted without a limit check (USAGE_LIMITS_FAIL_OPEN) "
                "tenant=%s membership=%s feature=%s", membership.tenant_id, membership.pk, feature,
            )
            return Admission(membership=membership, limits=limits, reservation=None)
        logger.error(
            "Limits unavailable: copilot call refused with 503 limits_unavailable tenant=%s membership=%s feature=%s",
            membership.tenant_id, membership.pk, feature,
        )
        raise
    if not result.allowed:
        # The window that keeps the caller waiting longest is the one to name.
        binding = max(result.exceeded, key=lambda usage: (usage.retry_after, usage.window.seconds))
        name = limit_name_of(binding)
        abuse.strike_record(membership=membership, kind=StrikeKind.HARD_LIMIT, limit=name)
        logger.info(
            "Copilot call refused by limit %s tenant=%s membership=%s feature=%s retry_after=%s",
            name, membership.tenant_id, membership.pk, feature, result.retry_after,
        )
        raise RateLimitExceeded(
            _refusal_message(name, binding.limit, result.retry_after), retry_after=result.retry_after, limit=name
        )
    limit_warnings_record(membership=membership, limits=limits, windows=result.windows)
    return Admission(membership=membership, limits=limits, reservation=result)


def call_settle(
    *,
    admission: Admission | None,
    sent: bool,
    prompt_tokens: int = 0,
    completion_tokens: int = 0,
    keep_estimate: bool = False,
) -> None:
    """After the call: the token windows to the tokens used, the whole reservation given back
    when nothing was sent, or (`keep_estimate`: tokens unknown) the estimate left counted.
    Never raises (the counter engine logs its own failures)."""
    if admission is None or admission.reservation is None:
        return
    if keep_estimate and sent:
        return  # the reservation already counts the request and the estimated tokens
    try:
        backend = get_counter_backend()
        reservation = admission.reservation
        if not sent:
            backend.release(reservation=reservation)
            return
        used = max(0, int(prompt_tokens or 0)) + max(0, int(completion_tokens or 0))
        membership = admission.membership
        adjusted = backend.reconcile(
            reservation=reservation,
            actual={user_key(membership.pk, "tokens"): used, tenant_key(membership.tenant_id): used},
        )
        limit_warnings_record(membership=membership, limits=admission.limits, windows=adjusted)
    except Exception:  # noqa: BLE001 - an answered call must not turn into an error here
        logger.exception("Settling a limits reservation failed (membership %s).", admission.membership.pk)


# -- warnings -------------------------------------------------------------------------------

def limit_warnings_record(
    *, membership: Membership, limits: EffectiveLimits, windows: Iterable[WindowUsage]
) -> list[LimitWarning]:
    """Record a warning for every window this operation moved across the warning threshold,
    at most once per limit, subject and window, and e-mail it (after commit).

    User limits warn the user and the tenant's administrators; the tenant's token limit
    warns the administrators. Returns the warnings written now (none if already warned).
    """
    from copilot_admin.usage import notifications

    crossed = [usage for usage in windows if usage.crossed(percent=limits.warning_threshold_percent)]
    written: list[LimitWarning] = []
    for usage in crossed:
        name = limit_name_of(usage)
        tenant = membership.tenant
        per_user = name in USER_LIMITS
        try:
            with transaction.atomic():
                warning = LimitWarning.objects.for_tenant(tenant).create(
                    tenant=tenant,
                    limit=name,
                    subject_key=f"u:{membership.pk}" if per_user else f"t:{tenant.pk}",
                    membership=membership if per_user else None,
                    window_start=usage.window_start,
                    limit_value=usage.limit,
                    used=usage.used_after,
                    threshold_percent=limits.warning_threshold_percent,
                )
                audit_change_record(actor=None, tenant=tenant, instance=warning)  # the system warns
                notifications.limit_warning_notify(warning=warning, membership=membership if per_user else None)
        except IntegrityError:
            continue  # another call crossed first in this window: warned once already
        except Exception:  # noqa: BLE001 - a warning must not fail the call
            logger.exception("Recording a limit warning failed (tenant %s, %s).", membership.tenant_id, name)
            continue
        written.append(warning)
    return written
