"""usage's entry point: every change other rooms (copilot, platform, the demo seed) and usage's
own pages and API make to usage goes through these functions; reads go through `selectors`.

Each function that takes an `actor` checks the actor's permission itself and holds the
transaction of its change; the modules below do the work inside it:
`limits` (the limit policy), `admission` (per-call reservations on the counters), `abuse`
(strikes, suspensions, terminations, reinstatement) and `alerts` (limit warnings, e-mails).

The copilot call (`copilot_admin.copilot.services`) asks here, in the order of the contract's
access chain:

- `copilot_access_state(membership)`: whether the user's copilot access is suspended or
  terminated by the abuse rules.
- `limits_reserve(...)`: reserve the call against the tenant's effective limits, atomically;
  raises `RateLimitExceeded` (429 `rate_limited` with Retry-After, naming the limit) or `LimitsUnavailable` (503, unless `USAGE_LIMITS_FAIL_OPEN`), and
  records threshold warnings. The call holds the returned `Reservation` until it settles.
- `limits_settle(...)`: after the call, correct the reservation to the tokens really used,
  give it back when nothing was sent upstream, or keep the estimate when the tokens used
  cannot be known; warnings for thresholds the correction crossed. Never raises.
- `usage_record_create(...)`: one `UsageRecord` per call that passed the access checks, and
  the call's daily and hourly roll-ups; a content-filter refusal, and a refusal by a limit,
  is a strike. All of it in the caller's transaction (the call's bookkeeping is one unit).
  Metadata only, never content.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

from django.db import transaction
from django.utils import timezone

from copilot_admin.access.permissions import Perm, PlatformPerm
from copilot_admin.access.policy import has_permission, permission_require
from copilot_admin.audit.services import audit_change_record
from copilot_admin.core.errors import ApplicationError
from copilot_admin.core.inserts import OneStatement
from copilot_admin.core.versioned_cache import Read, cached, tenant_scope
from copilot_admin.usage import abuse, admission, alerts, limits, rollups, selectors
from copilot_admin.usage.admission import RateLimitExceeded, Reservation
from copilot_admin.usage.models import (
    AbuseCase,
    AccessStatus,
    CopilotAccess,
    PlatformLimitPolicy,
    StrikeKind,
    TenantLimitPolicy,
    UsageOutcome,
    UsageRecord,
)
from tenants.models import Membership, User

AccessState = Literal["active", "suspended", "terminated"]


# -- the copilot call -----------------------------------------------------------------------------

def copilot_access_state(membership: Membership) -> AccessState:
    """The user's copilot access in this tenant now: active, suspended (for a period) or
    terminated (a lapsed suspension is active). Read through the versioned cache: a change
    to the access row takes effect on the next call."""
    access = cached(
        *copilot_access_read(tenant_slug=membership.tenant.slug, membership_id=membership.pk),
        lambda: CopilotAccess.objects.for_tenant(membership.tenant)
        .filter(membership_id=membership.pk)
        .only("status", "suspended_until")
        .first(),
    )
    return AccessStatus.ACTIVE if access is None else access.state_at(timezone.now())


def copilot_access_read(*, tenant_slug: str, membership_id: int) -> Read:
    """The versioned read (key, scopes) of `copilot_access_state`, for a request's read plan."""
    return f"copilot-access:{tenant_slug}:{membership_id}", (tenant_scope(tenant_slug),)


def limits_reserve(*, membership: Membership, feature: str, estimated_tokens: int) -> Reservation:
    """Reserve one request and `estimated_tokens` against every limit that applies, all or none.

    Raises `RateLimitExceeded` when a limit refuses (the caller records the refused call with
    `usage_record_create(..., limit=refusal.limit)`, which counts the strike in the same
    transaction), `LimitsUnavailable` when the counters cannot be reached (and fail-open is
    off); then nothing was reserved. An admitted call that crosses a warning threshold is warned of.
    """
    effective = selectors.call_limits(membership.tenant)
    reservation = admission.reserve(
        membership=membership, limits=effective, estimated_tokens=estimated_tokens, feature=feature
    )
    alerts.limit_warnings_record(membership=membership, limits=effective, windows=reservation.windows)
    return reservation


def limits_settle(
    *,
    reservation: Reservation,
    sent: bool,
    prompt_tokens: int = 0,
    completion_tokens: int = 0,
    keep_estimate: bool = False,
) -> None:
    """Correct the reservation: to the tokens used when the call was sent, released when it was not.

    `keep_estimate`: the call may have been sent but its tokens are unknown (the caller went
    away mid-call, or the call failed in an unexpected way): the estimate stays counted, never
    refunded. Never raises: a failure to settle must not turn an answered call into an error.
    """
    moved = admission.settle(
        reservation=reservation, sent=sent, prompt_tokens=prompt_tokens, completion_tokens=completion_tokens,
        keep_estimate=keep_estimate,
    )
    alerts.limit_warnings_record(membership=reservation.membership, limits=reservation.limits, windows=moved)


def usage_record_create(
    *,
    membership: Membership,
    feature: str,
    zone: str,
    outcome: UsageOutcome | str,
    request_id: str,
    deployment: str = "",
    attempts: int = 0,
    prompt_tokens: int = 0,
    completion_tokens: int = 0,
    latency_ms: int = 0,
    error_code: str = "",
    upstream_request_id: str = "",
    template_version: str = "",
    limit: str = "",
    company_id: int | None = None,
    integration_key: str = "",
    statement: OneStatement | None = None,
) -> UsageRecord:
    """Record one copilot call (metadata only), add it to the daily and hourly roll-ups, and
    count a strike against the user for a content-filter refusal, or for a refusal by a limit
    (`limit`: the one that refused, from `RateLimitExceeded.limit`): at most one strike per
    limit and window, so a burst refused within one minute is one strike. `integration_key`:
    the public id of the integration key the call was made with, for the member.

    With `statement` (`core.inserts.OneStatement`), the record and its roll-ups become parts of
    the caller's statement and any strike its `first` work: all of it is written when the
    caller executes it, with the caller's other rows (the copilot call's audit entry), in one
    transaction (DESIGN.md, "The call's bookkeeping"); on PostgreSQL, without a strike, as one
    statement, which holds the user's roll-up rows only while PostgreSQL runs and commits it.
    Without `statement`, all of it is written at once the same way, in the caller's
    transaction if there is one. The returned record is saved once the statement has run."""
    own = statement is None
    if own:
        statement = OneStatement()
    if error_code == CONTENT_FILTERED:
        statement.first(lambda: abuse.strike_record(membership=membership, kind=StrikeKind.CONTENT_FILTER))
    elif outcome == UsageOutcome.REFUSED and error_code == RateLimitExceeded.code:
        window_start = admission.limit_window_start(limit)
        statement.first(lambda: abuse.strike_record(membership=membership, kind=StrikeKind.HARD_LIMIT, limit=limit,
                                                    window_start=window_start))
    record = _usage_record(
        membership=membership, feature=feature, zone=zone, outcome=outcome, request_id=request_id,
        deployment=deployment, attempts=attempts, prompt_tokens=prompt_tokens,
        completion_tokens=completion_tokens, latency_ms=latency_ms, error_code=error_code,
        upstream_request_id=upstream_request_id, template_version=template_version, company_id=company_id,
        integration_key=integration_key,
    )
    rollups.usage_record_add(statement, record, **_rollup_numbers(
        outcome=outcome, error_code=error_code, prompt_tokens=prompt_tokens, completion_tokens=completion_tokens,
    ))
    if own:
        statement.execute()
    return record


CONTENT_FILTERED = "content_filtered"
_FAILED_OUTCOMES = frozenset({UsageOutcome.FAILED, UsageOutcome.ERROR, UsageOutcome.CANCELLED})


def _rollup_numbers(*, outcome: str, error_code: str, prompt_tokens: int, completion_tokens: int) -> dict:
    """What one call adds to the roll-ups: refusals by a limit are counted as such, other
    refusals (nothing was sent) not at all; answered and failed calls as requests."""
    if outcome == UsageOutcome.REFUSED:
        return {"rate_limited": 1} if error_code == RateLimitExceeded.code else {}
    return {
        "requests": 1,
        "failed": int(outcome in _FAILED_OUTCOMES),
        "filtered": int(error_code == CONTENT_FILTERED),
        "prompt_tokens": max(0, prompt_tokens),
        "completion_tokens": max(0, completion_tokens),
    }


def _usage_record(
    *,
    membership: Membership,
    feature: str,
    zone: str,
    outcome: UsageOutcome | str,
    request_id: str,
    deployment: str,
    attempts: int,
    prompt_tokens: int,
    completion_tokens: int,
    latency_ms: int,
    error_code: str,
    upstream_request_id: str,
    template_version: str,
    company_id: int | None = None,
    integration_key: str = "",
) -> UsageRecord:
    """The call's record, not yet saved."""
    tenant = membership.tenant
    return UsageRecord(
        tenant=tenant,
        user_id=membership.user_id,
        membership=membership,
        feature=feature,
        zone=zone,
        deployment=deployment[:64],
        attempts=min(attempts, 32767),
        prompt_tokens=prompt_tokens,
        completion_tokens=completion_tokens,
        latency_ms=latency_ms,
        outcome=outcome,
        error_code=error_code[:64],
        request_id=request_id,
        upstream_request_id=(upstream_request_id or "")[:128],
        template_version=template_version[:32],
        company_id=company_id,
        integration_key=integration_key[:16],
    )


# -- the limit policy -------------------------------------------------------------------------------

def tenant_limits_update(*, actor: Membership, changes: Mapping[str, int | None]) -> TenantLimitPolicy:
    """Set (a number) or clear (None: follow the platform default) the tenant's overrides
    (`admin.limits`).

    Each limit must lie between 1 and the platform maximum, the warning threshold between 1
    and 100 percent; otherwise nothing changes (400 with the offending fields). The change is
    recorded with its actor in the tenant's audit log.
    """
    permission_require(actor=actor, permission=Perm.LIMITS,
                       message="Your security role does not allow changing usage limits.")
    with transaction.atomic():
        return limits.tenant_override_write(
            actor=actor, tenant=actor.tenant, platform=selectors.platform_policy(), changes=changes
        )


def platform_limits_update(*, actor: User, changes: Mapping[str, int]) -> PlatformLimitPolicy:
    """Platform operators set the defaults, the maxima and the abuse rules (`limits.platform_policy_write`)."""
    permission_require(actor=actor, permission=PlatformPerm.OPERATOR,
                       message="Only platform operators change the platform limit policy.")
    with transaction.atomic():
        return limits.platform_policy_write(actor=actor, changes=changes)


def platform_policy_ensure() -> PlatformLimitPolicy:
    """The platform policy row, written with the defaults if it does not exist yet (idempotent;
    the writing is recorded in the platform's audit log, by the system)."""
    with transaction.atomic():
        policy, created = PlatformLimitPolicy.objects.get_or_create(pk=PlatformLimitPolicy.SINGLETON_PK)
        if created:
            audit_change_record(actor=None, tenant=None, instance=policy)
    return policy


# -- decisions on abuse cases -------------------------------------------------------------------------

def _clean_reason(reason) -> str:
    text = (reason or "").strip() if isinstance(reason, str) else ""
    if not text:
        raise ApplicationError("A reason is required.", fields={"reason": ["required"]})
    if len(text) > abuse.REASON_MAX_LENGTH:
        raise ApplicationError(
            f"The reason is at most {abuse.REASON_MAX_LENGTH} characters.", fields={"reason": ["too long"]}
        )
    return text


def _is_operator(actor: Membership | User) -> bool:
    return has_permission(actor, PlatformPerm.OPERATOR)


def _decider(actor: Membership | User, case: AbuseCase) -> User:
    """The user deciding on `case`: a member of its tenant holding `admin.limits`, or an
    active platform operator; anyone else is refused (403), a member of another tenant gets
    404 (foreign and missing alike)."""
    permission_require(actor=actor, permission=(Perm.LIMITS, PlatformPerm.OPERATOR), tenant=case.tenant_id,
                       message="Only tenant administrators and platform operators decide abuse cases.")
    return actor.user if isinstance(actor, Membership) else actor


def case_reinstate(*, actor: Membership | User, case: AbuseCase, reason: str) -> AbuseCase:
    """Give the user's copilot access back and resolve the member's open suspension and
    termination cases (and this case) as reinstated. Strikes so far are forgiven.

    A suspension: tenant administrators and operators. A termination: operators only
    (403 `operator_required`). An active user's review case has nothing to reinstate (409).
    """
    reason = _clean_reason(reason)
    decider = _decider(actor, case)
    with transaction.atomic():
        return abuse.case_reinstate(case=case, decider=decider, decider_is_operator=_is_operator(actor), reason=reason)


def case_terminate(*, actor: Membership | User, case: AbuseCase, reason: str) -> AbuseCase:
    """Terminate the user's copilot access until a platform operator reinstates it; returns
    the termination case (409 when it is terminated already)."""
    reason = _clean_reason(reason)
    decider = _decider(actor, case)
    with transaction.atomic():
        return abuse.case_terminate(case=case, decider=decider, reason=reason)


def case_dismiss(*, actor: Membership | User, case: AbuseCase, reason: str) -> AbuseCase:
    """Close a review or suspension case without changing the user's access (409 for a
    termination: it stays open until an operator reinstates)."""
    reason = _clean_reason(reason)
    decider = _decider(actor, case)
    with transaction.atomic():
        return abuse.case_dismiss(case=case, decider=decider, reason=reason)
