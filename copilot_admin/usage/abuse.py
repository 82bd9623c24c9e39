"""Abuse rules: strikes, suspensions, terminations, reinstatement, and the pattern review.

- A strike is a call refused by a hard limit or by the content filter (`strike_record`); a
  limit strikes at most once per window (the strike's unique constraint on limit and window),
  so thirty calls refused within one minute are one strike, not thirty.
  `strike_limit` strikes within `strike_window_minutes` suspend the user's copilot access
  for `suspension_minutes` (a suspension case); the strike-out that would be the
  `suspensions_to_terminate`-th suspension within `termination_window_days` terminates the
  access instead (a termination case), until a platform operator reinstates it. Strikes that
  led to a suspension, or that a reinstatement forgave, are not counted again.
- A decision on a case (`case_reinstate`, `case_terminate`, `case_dismiss`) runs inside the
  caller's transaction: `services` checks who decides (a tenant administrator with
  `admin.limits`, or a platform operator) and cleans the reason first. Only a platform
  operator reinstates a termination.
- `usage_patterns_review` (Celery beat) opens review cases for patterns the per-call checks
  miss: sustained near-limit use hour after hour, or day after day.

Every change of a user's access and of a case is recorded in the tenant's audit log, in its
transaction, with its actor: the deciding user, or nobody (the system) for automatic
transitions, also when they happen inside a user's own request. The user and the tenant's
administrators are e-mailed after commit.
"""

from __future__ import annotations

import logging
import math
from collections import Counter
from datetime import timedelta

from django.db import IntegrityError, transaction
from django.db.models import F, Sum
from django.utils import timezone

from copilot_admin.audit.services import audit_change_record, audit_snapshot
from copilot_admin.core.errors import Conflict, PermissionRefused
from copilot_admin.usage import alerts, webhooks
from copilot_admin.usage.limits import EffectiveLimits
from copilot_admin.usage.models import (
    AbuseCase,
    AccessStatus,
    CaseKind,
    CaseResolution,
    CaseStatus,
    CopilotAccess,
    DailyUsage,
    HourlyUsage,
    NotificationKind,
    Strike,
    StrikeKind,
)
from copilot_admin.usage.selectors import effective_limits, platform_policy
from tenants.models import Membership, Tenant, TenantStatus, User

logger = logging.getLogger(__name__)

REASON_MAX_LENGTH = 500


# -- the access row ------------------------------------------------------------------------------

def _access_locked(membership: Membership, *, actor: User | None) -> CopilotAccess:
    """The membership's access row, created if missing (recorded with `actor`), locked until
    the transaction ends."""
    queryset = CopilotAccess.objects.for_tenant(membership.tenant)
    access = queryset.select_for_update().filter(membership_id=membership.pk).first()
    if access is None:
        try:
            with transaction.atomic():
                created = queryset.create(tenant=membership.tenant, membership=membership)
                audit_change_record(actor=actor, tenant=membership.tenant, instance=created)
        except IntegrityError:
            pass  # created concurrently
        access = queryset.select_for_update().get(membership_id=membership.pk)
    access.membership = membership
    return access


# -- strikes and the automatic transitions -------------------------------------------------------

def strike_record(
    *, membership: Membership, kind: str, limit: str = "", window_start=None
) -> AbuseCase | None:
    """Count a strike against the user and apply the strike rules. Returns the suspension or
    termination case it caused, if any.

    A hard-limit strike with its limit's `window_start` counts once per limit and window: a
    later refusal in the same window finds the strike there (the unique constraint, atomic
    under any concurrency) and is no strike. Never raises: the refusal that caused the strike
    stands whatever happens here (a failure is logged)."""
    try:
        with transaction.atomic():
            now = timezone.now()
            tenant = membership.tenant
            try:
                with transaction.atomic():
                    Strike.objects.for_tenant(tenant).create(
                        tenant=tenant, membership=membership, kind=kind, limit=limit, occurred_at=now,
                        window_start=window_start if kind == StrikeKind.HARD_LIMIT else None,
                    )
            except IntegrityError:
                return None  # this limit struck in this window already

            limits = effective_limits(tenant)
            access = _access_locked(membership, actor=None)
            if access.state_at(now) != AccessStatus.ACTIVE:
                return None
            strikes = Strike.objects.for_tenant(tenant).filter(
                membership_id=membership.pk, occurred_at__gte=now - timedelta(minutes=limits.strike_window_minutes)
            )
            if access.strikes_counted_from is not None:
                strikes = strikes.filter(occurred_at__gt=access.strikes_counted_from)
            count = strikes.count()
            if count < limits.strike_limit:
                return None
            return _strike_out(access=access, limits=limits, strikes=count, now=now)
    except Exception:  # noqa: BLE001 - see the docstring
        logger.exception("Recording a %s strike failed (membership %s).", kind, membership.pk)
        return None


def _strike_out(*, access: CopilotAccess, limits: EffectiveLimits, strikes: int, now) -> AbuseCase:
    membership = access.membership
    earlier = AbuseCase.objects.for_tenant(membership.tenant).filter(
        membership_id=membership.pk,
        kind=CaseKind.SUSPENSION,
        opened_at__gte=now - timedelta(days=limits.termination_window_days),
    ).count()
    details = {
        "strikes": strikes,
        "strike_limit": limits.strike_limit,
        "strike_window_minutes": limits.strike_window_minutes,
        "earlier_suspensions": earlier,
        "termination_window_days": limits.termination_window_days,
    }
    if earlier + 1 >= limits.suspensions_to_terminate:
        summary = (
            f"{strikes} strikes within {limits.strike_window_minutes} minutes after {earlier} suspension(s) "
            f"within {limits.termination_window_days} days: copilot access terminated"
        )
        return _terminate(access=access, actor=None, summary=summary, details=details, now=now)
    return _suspend(access=access, limits=limits, details=details, now=now)


def _suspend(*, access: CopilotAccess, limits: EffectiveLimits, details: dict, now) -> AbuseCase:
    until = now + timedelta(minutes=limits.suspension_minutes)
    summary = (
        f"{details['strikes']} strikes within {limits.strike_window_minutes} minutes: copilot access suspended "
        f"for {limits.suspension_minutes} minutes"
    )
    before = audit_snapshot(access)
    access.status = AccessStatus.SUSPENDED
    access.suspended_until = until
    access.strikes_counted_from = now
    access.reason = summary[:255]
    access.changed_at = now
    access.save()
    tenant = access.membership.tenant
    audit_change_record(actor=None, tenant=tenant, instance=access, before=before)
    case = AbuseCase.objects.for_tenant(tenant).create(
        tenant=tenant,
        membership=access.membership,
        kind=CaseKind.SUSPENSION,
        summary=summary[:255],
        details={**details, "suspension_minutes": limits.suspension_minutes},
        suspended_until=until,
        opened_at=now,
    )
    audit_change_record(actor=None, tenant=tenant, instance=case)
    alerts.access_change_notify(
        case=case, kind=NotificationKind.ACCESS_SUSPENDED, reason=f"{summary} (until {until:%Y-%m-%d %H:%M} UTC)"
    )
    return case


def _resolve(case: AbuseCase, *, resolution: str, actor: User | None, reason: str, now) -> None:
    before = audit_snapshot(case)
    case.status = CaseStatus.RESOLVED
    case.resolution = resolution
    case.resolution_reason = reason[:REASON_MAX_LENGTH]
    case.resolved_at = now
    case.resolved_by = actor
    case.save()
    audit_change_record(actor=actor, tenant=case.tenant_id, instance=case, before=before)


def _terminate(*, access: CopilotAccess, actor: User | None, summary: str, details: dict, now,
               reason: str = "") -> AbuseCase:
    membership = access.membership
    before = audit_snapshot(access)
    access.status = AccessStatus.TERMINATED
    access.suspended_until = None
    access.strikes_counted_from = now
    access.reason = summary[:255]
    access.changed_at = now
    access.save()
    audit_change_record(actor=actor, tenant=membership.tenant, instance=access, before=before)
    superseded = AbuseCase.objects.for_tenant(membership.tenant).filter(
        membership_id=membership.pk, status=CaseStatus.OPEN,
        kind__in=[CaseKind.SUSPENSION, CaseKind.REVIEW, CaseKind.ANOMALY]
    )
    for case in superseded.select_for_update():
        _resolve(case, resolution=CaseResolution.TERMINATED, actor=actor, reason=reason or summary, now=now)
    case = AbuseCase.objects.for_tenant(membership.tenant).create(
        tenant=membership.tenant,
        membership=membership,
        kind=CaseKind.TERMINATION,
        summary=summary[:255],
        details=details,
        opened_at=now,
        opened_by=actor,
    )
    audit_change_record(actor=actor, tenant=membership.tenant, instance=case)
    alerts.access_change_notify(case=case, kind=NotificationKind.ACCESS_TERMINATED, reason=summary)
    return case


# -- decisions of administrators and operators (inside the caller's transaction) ---------------

def _locked_case(case: AbuseCase, *, decider: User) -> tuple[AbuseCase, CopilotAccess]:
    """The open case and its user's access row, re-read under locks (409 `case_resolved` when
    the case was resolved meanwhile). The access row is locked first, as the strike rules do,
    so that a decision and an automatic transition of the same user queue up instead of
    deadlocking."""
    tenant = case.tenant
    membership = Membership.objects.for_tenant(tenant).select_related("user", "tenant").get(pk=case.membership_id)
    access = _access_locked(membership, actor=decider)
    locked = AbuseCase.objects.for_tenant(tenant).select_for_update().get(pk=case.pk)
    locked.membership = membership
    if not locked.is_open:
        raise Conflict("This case is already resolved.", code="case_resolved")
    return locked, access


def case_reinstate(*, case: AbuseCase, decider: User, decider_is_operator: bool, reason: str) -> AbuseCase:
    """Give the user's copilot access back and resolve the member's open suspension and
    termination cases (and this case) as reinstated. Strikes so far are forgiven.

    A suspension: whoever may decide. A termination: operators only (403
    `operator_required`). An active user's review case has nothing to reinstate (409).
    """
    case, access = _locked_case(case, decider=decider)
    now = timezone.now()
    state = access.state_at(now)
    if state == AccessStatus.TERMINATED and not decider_is_operator:
        raise PermissionRefused(
            "A terminated copilot access is reinstated only by a platform operator.", code="operator_required"
        )
    if state == AccessStatus.ACTIVE and case.kind in (CaseKind.REVIEW, CaseKind.ANOMALY):
        raise Conflict("The user's copilot access is active: nothing to reinstate. Dismiss the case instead.",
                       code="nothing_to_reinstate")
    changed = access.status != AccessStatus.ACTIVE
    if changed:
        before = audit_snapshot(access)
        access.status = AccessStatus.ACTIVE
        access.suspended_until = None
        access.strikes_counted_from = now
        access.reason = f"Reinstated by {decider.email}: {reason}"[:255]
        access.changed_at = now
        access.save()
        audit_change_record(actor=decider, tenant=case.tenant_id, instance=access, before=before)
    others = AbuseCase.objects.for_tenant(case.tenant).filter(
        membership_id=case.membership_id, status=CaseStatus.OPEN,
        kind__in=[CaseKind.SUSPENSION, CaseKind.TERMINATION],
    ).exclude(pk=case.pk)
    for other in others.select_for_update():
        _resolve(other, resolution=CaseResolution.REINSTATED, actor=decider, reason=reason, now=now)
    _resolve(case, resolution=CaseResolution.REINSTATED, actor=decider, reason=reason, now=now)
    if changed and state != AccessStatus.ACTIVE:
        alerts.access_change_notify(
            case=case, kind=NotificationKind.ACCESS_REINSTATED, reason=f"reinstated by {decider.email}: {reason}"
        )
    return case


def case_terminate(*, case: AbuseCase, decider: User, reason: str) -> AbuseCase:
    """Terminate the user's copilot access (until a platform operator reinstates it): the
    case and the member's other open suspension and review cases are resolved as terminated
    and a termination case is opened. Returns the termination case."""
    case, access = _locked_case(case, decider=decider)
    if case.kind == CaseKind.TERMINATION:
        raise Conflict("The copilot access is already terminated.", code="already_terminated")
    now = timezone.now()
    if access.state_at(now) == AccessStatus.TERMINATED:
        raise Conflict("The copilot access is already terminated.", code="already_terminated")
    return _terminate(
        access=access,
        actor=decider,
        summary=f"Terminated by {decider.email}: {reason}",
        details={"from_case": case.pk},
        now=now,
        reason=reason,
    )


def case_dismiss(*, case: AbuseCase, decider: User, reason: str) -> AbuseCase:
    """Close a review or suspension case without changing the user's access (a suspension
    runs its course). A termination case stays open until an operator reinstates (409)."""
    case, _access = _locked_case(case, decider=decider)
    if case.kind == CaseKind.TERMINATION:
        raise Conflict(
            "A termination stays open until a platform operator reinstates the access.", code="termination_open"
        )
    _resolve(case, resolution=CaseResolution.DISMISSED, actor=decider, reason=reason, now=timezone.now())
    return case


# -- periodic work -------------------------------------------------------------------------------

def suspensions_expire(*, now=None) -> int:
    """Write the end of every suspension whose period is over: the access back to active and
    its open suspension cases resolved as expired, by the system. Returns how many cases ended."""
    now = now or timezone.now()
    ended = 0
    for tenant in Tenant.objects.all():
        with transaction.atomic():
            lapsed = CopilotAccess.objects.for_tenant(tenant).select_for_update().filter(
                status=AccessStatus.SUSPENDED, suspended_until__lte=now
            )
            for access in lapsed:
                before = audit_snapshot(access)
                access.status = AccessStatus.ACTIVE
                access.suspended_until = None
                access.reason = "Suspension ended"
                access.changed_at = now
                access.save()
                audit_change_record(actor=None, tenant=tenant, instance=access, before=before)
            cases = AbuseCase.objects.for_tenant(tenant).select_for_update().filter(
                status=CaseStatus.OPEN, kind=CaseKind.SUSPENSION, suspended_until__lte=now
            )
            for case in cases:
                _resolve(case, resolution=CaseResolution.EXPIRED, actor=None, reason="Suspension period ended",
                         now=now)
                ended += 1
    return ended


def _open_review(*, tenant: Tenant, membership_id: int, key: str, summary: str, details: dict, now) -> AbuseCase | None:
    try:
        with transaction.atomic():
            case = AbuseCase.objects.for_tenant(tenant).create(
                tenant=tenant, membership_id=membership_id, kind=CaseKind.REVIEW, summary=summary[:255],
                details=details, opened_at=now, dedupe_key=key[:120],
            )
            audit_change_record(actor=None, tenant=tenant, instance=case)
            webhooks.webhook_case_opened(case=case)
            return case
    except IntegrityError:
        return None  # this pattern of this user was opened for review already


def usage_patterns_review(*, now=None) -> list[AbuseCase]:
    """Open review cases for what no single call shows (at most one per rule, user and day):

    - sustained: within the last 24 whole hours, at least `review_sustained_hours` hours in
      which the user made `review_near_limit_percent`% or more of the hourly request limit;
    - repeated: within the last 7 whole days, at least `review_sustained_days` days in which
      the user used `review_near_limit_percent`% or more of the daily token limit.

    Users whose access is terminated are skipped. The system opens the cases.
    """
    now = now or timezone.now()
    end_hour = now.replace(minute=0, second=0, microsecond=0)
    today = end_hour.date()
    opened: list[AbuseCase] = []
    platform = platform_policy()
    for tenant in Tenant.objects.filter(status=TenantStatus.ACTIVE):
        limits = effective_limits(tenant, platform=platform)
        percent = limits.review_near_limit_percent
        terminated = set(
            CopilotAccess.objects.for_tenant(tenant)
            .filter(status=AccessStatus.TERMINATED)
            .values_list("membership_id", flat=True)
        )
        hourly_threshold = max(1, math.ceil(limits.user_requests_per_hour * percent / 100))
        busy_hours = Counter(
            HourlyUsage.objects.for_tenant(tenant)
            .filter(hour__gte=end_hour - timedelta(hours=24), hour__lt=end_hour, requests__gte=hourly_threshold)
            .values_list("membership_id", flat=True)
        )
        for membership_id, hours in sorted(busy_hours.items()):
            if hours >= limits.review_sustained_hours and membership_id not in terminated:
                case = _open_review(
                    tenant=tenant, membership_id=membership_id, now=now,
                    key=f"review:sustained-hours:{membership_id}:{today:%Y-%m-%d}",
                    summary=(f"{hours} of the last 24 hours at or above {percent}% of the hourly request limit "
                             f"({limits.user_requests_per_hour})"),
                    details={"rule": "sustained_hours", "hours": hours, "threshold_requests": hourly_threshold,
                             "user_requests_per_hour": limits.user_requests_per_hour, "percent": percent},
                )
                if case is not None:
                    opened.append(case)
        token_threshold = max(1, math.ceil(limits.user_tokens_per_day * percent / 100))
        heavy_days = Counter(
            membership_id
            for membership_id, _day in DailyUsage.objects.for_tenant(tenant)
            .filter(day__gte=today - timedelta(days=7), day__lt=today)
            .values("membership_id", "day")
            .annotate(tokens=Sum(F("prompt_tokens") + F("completion_tokens")))
            .filter(tokens__gte=token_threshold)
            .values_list("membership_id", "day")
        )
        for membership_id, days in sorted(heavy_days.items()):
            if days >= limits.review_sustained_days and membership_id not in terminated:
                case = _open_review(
                    tenant=tenant, membership_id=membership_id, now=now,
                    key=f"review:token-days:{membership_id}:{today:%Y-%m-%d}",
                    summary=(f"{days} of the last 7 days at or above {percent}% of the daily token limit "
                             f"({limits.user_tokens_per_day})"),
                    details={"rule": "token_days", "days": days, "threshold_tokens": token_threshold,
                             "user_tokens_per_day": limits.user_tokens_per_day, "percent": percent},
                )
                if case is not None:
                    opened.append(case)
    if opened:
        logger.info("Usage pattern review opened %s case(s).", len(opened))
    return opened
