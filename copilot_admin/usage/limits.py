"""The limit policy: what can be limited, how a tenant's effective limits follow from the
platform's policy and the tenant's overrides, and the validated writes of both policies.

- The platform's policy (`PlatformLimitPolicy`, one row) holds the defaults, the maxima a
  tenant may set and the abuse rules; a tenant's `TenantLimitPolicy` overrides any of the six
  contract fields within the maxima.
- `EffectiveLimits.of(platform=..., override=...)` is what applies: the override where set,
  else the default, never above a maximum (an override above a maximum that was lowered later
  is capped). `selectors.effective_limits(tenant)` reads the rows and applies it.
- `tenant_override_write` and `platform_policy_write` validate every value and change all of
  them or nothing (400 `limit_out_of_range` naming the fields). They run inside the caller's
  transaction; the caller (`services`) has checked the actor's permission.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass

from django.db import IntegrityError, transaction

from copilot_admin.audit.services import audit_change_record, audit_snapshot
from copilot_admin.core.errors import ApplicationError
from copilot_admin.usage.counters import Window
from copilot_admin.usage.models import LimitName, PlatformLimitPolicy, TenantLimitPolicy
from tenants.models import Membership, Tenant, User

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
    "anomaly_z_threshold",
    "anomaly_baseline_weeks",
    "anomaly_min_requests",
)
PLATFORM_FIELDS: tuple[str, ...] = (*POLICY_FIELDS, *MAXIMUM_FIELDS, *ABUSE_RULE_FIELDS)
PERCENT_FIELDS = frozenset({"warning_threshold_percent", "review_near_limit_percent"})
# Bounds of the abuse rules that are not just "at least 1" (the model's validators say the same).
RULE_BOUNDS = {"anomaly_z_threshold": (2, 100), "anomaly_baseline_weeks": (1, 12)}
# The tenant's alert settings beside its limits: the warning thresholds, the daily digest and
# whether an anomaly suspends by itself.
TENANT_SETTING_FIELDS: tuple[str, ...] = ("warning_thresholds", "alert_digest", "anomaly_auto_suspend")
MAX_WARNING_THRESHOLDS = 5

# Which window each limit counts in, whom it limits, and what it counts.
LIMIT_WINDOWS: dict[str, Window] = {
    LimitName.USER_REQUESTS_PER_MINUTE: Window.MINUTE,
    LimitName.USER_REQUESTS_PER_HOUR: Window.HOUR,
    LimitName.USER_REQUESTS_PER_DAY: Window.DAY,
    LimitName.USER_TOKENS_PER_DAY: Window.DAY,
    LimitName.TENANT_TOKENS_PER_DAY: Window.DAY,
}
USER_LIMITS = frozenset(LIMIT_FIELDS) - {LimitName.TENANT_TOKENS_PER_DAY}
TOKEN_LIMITS = frozenset({LimitName.USER_TOKENS_PER_DAY, LimitName.TENANT_TOKENS_PER_DAY})


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
    anomaly_z_threshold: int = 6
    anomaly_baseline_weeks: int = 4
    anomaly_min_requests: int = 20
    warning_thresholds: tuple[int, ...] = (80, 95)
    alert_digest: bool = False
    anomaly_auto_suspend: bool = False

    @classmethod
    def of(cls, *, platform: PlatformLimitPolicy, override: TenantLimitPolicy | None) -> EffectiveLimits:
        """The tenant's override where set, else the platform default; never above a platform maximum.

        The warning thresholds: the tenant's own list when it set one (its lowest is then the
        `warning_threshold_percent`); otherwise `warning_threshold_percent` (the tenant's or the
        platform's) and every platform threshold above it (defaults: 80% and 95%).
        """
        values: dict = {}
        for name in POLICY_FIELDS:
            own = getattr(override, name, None) if override is not None else None
            value = getattr(platform, name) if own is None else own
            if name in LIMIT_FIELDS:
                value = min(value, getattr(platform, f"max_{name}"))
            values[name] = int(value)
        values.update({name: int(getattr(platform, name)) for name in ABUSE_RULE_FIELDS})
        own_thresholds = getattr(override, "warning_thresholds", None) if override is not None else None
        if own_thresholds:
            thresholds = sorted({int(item) for item in own_thresholds})
            values["warning_threshold_percent"] = thresholds[0]
        else:
            lowest = values["warning_threshold_percent"]
            thresholds = sorted({lowest, *(int(t) for t in (platform.warning_thresholds or ()) if int(t) > lowest)})
        values["warning_thresholds"] = tuple(thresholds)
        values["alert_digest"] = bool(getattr(override, "alert_digest", False))
        values["anomaly_auto_suspend"] = bool(getattr(override, "anomaly_auto_suspend", False))
        return cls(**values)

    def value(self, name: str) -> int:
        return getattr(self, str(name))

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


# -- writing the policies ----------------------------------------------------------------------

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


def warning_thresholds_clean(value, *, errors: dict, name: str = "warning_thresholds") -> list[int] | None:
    """A list of 1 to `MAX_WARNING_THRESHOLDS` distinct whole percentages (1-100), sorted;
    None or an empty list: none of its own."""
    if value is None or value == []:
        return None
    if not isinstance(value, (list, tuple)) or len(value) > MAX_WARNING_THRESHOLDS:
        errors[name] = [f"a list of at most {MAX_WARNING_THRESHOLDS} percentages"]
        return None
    if any(isinstance(item, bool) or not isinstance(item, int) or not 1 <= item <= 100 for item in value):
        errors[name] = ["each threshold is a whole number between 1 and 100"]
        return None
    return sorted(set(value))


def _checked_setting(name: str, value, *, errors: dict):
    if name == "warning_thresholds":
        return warning_thresholds_clean(value, errors=errors)
    if not isinstance(value, bool):
        errors[name] = ["must be true or false"]
        return None
    return value


def _refuse_unknown(changes: Mapping, allowed: Iterable[str]) -> None:
    unknown = sorted(set(changes) - set(allowed))
    if unknown:
        raise ApplicationError(
            f"Unknown field(s): {', '.join(unknown)}.", fields={name: ["unknown field"] for name in unknown}
        )


def tenant_override_write(
    *, actor: Membership, tenant: Tenant, platform: PlatformLimitPolicy, changes: Mapping[str, int | None]
) -> TenantLimitPolicy:
    """Set (a number) or clear (None: follow the platform default) the tenant's overrides,
    recorded with `actor` in the tenant's audit log.

    Each limit must lie between 1 and the platform maximum, the warning threshold between 1
    and 100 percent; otherwise nothing changes (400 with the offending fields). Runs inside
    the caller's transaction (the override row is locked until it ends).
    """
    _refuse_unknown(changes, (*POLICY_FIELDS, *TENANT_SETTING_FIELDS))
    errors: dict[str, list[str]] = {}
    cleaned: dict[str, object] = {}
    for name, value in changes.items():
        if name in TENANT_SETTING_FIELDS:
            cleaned[name] = _checked_setting(name, value, errors=errors)
            continue
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


def platform_policy_write(*, actor: User, changes: Mapping[str, int]) -> PlatformLimitPolicy:
    """Set the platform's defaults, maxima and abuse rules, recorded with `actor` in the
    platform's audit log (the policy belongs to no tenant).

    Every value is a whole number of at least 1 (percentages at most 100) and every default
    at most its maximum; otherwise nothing changes. Tenants' overrides above a lowered maximum
    are capped when read. Runs inside the caller's transaction (the row is locked until it ends).
    """
    _refuse_unknown(changes, (*PLATFORM_FIELDS, "warning_thresholds"))
    policy, created = PlatformLimitPolicy.objects.select_for_update().get_or_create(pk=PlatformLimitPolicy.SINGLETON_PK)
    before = None if created else audit_snapshot(policy)
    errors: dict[str, list[str]] = {}
    for name, value in changes.items():
        if name == "warning_thresholds":
            policy.warning_thresholds = warning_thresholds_clean(value, errors=errors) or []
            continue
        low, high = RULE_BOUNDS.get(name, (1, 100 if name in PERCENT_FIELDS else column_maximum(name)))
        checked = _checked_int(name, value, low=low, high=high, errors=errors)
        if checked is not None:
            setattr(policy, name, checked)
    for name in LIMIT_FIELDS:
        if name not in errors and getattr(policy, name) > getattr(policy, f"max_{name}"):
            errors[name] = [f"the default must not exceed the maximum ({getattr(policy, f'max_{name}')})"]
    if errors:
        first = next(iter(errors))
        raise ApplicationError(f"{first}: {errors[first][0]}.", code="limit_out_of_range", fields=errors)
    policy.save()
    audit_change_record(actor=actor, tenant=None, instance=policy, before=before)
    return policy
