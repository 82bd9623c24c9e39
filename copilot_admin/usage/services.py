"""Writes and decisions of usage: the hooks the copilot call goes through, and usage records.

The copilot service (`copilot_admin.copilot.services`) asks here, in the order of the
contract's access chain:

- `copilot_access_state(membership)`: whether the user's copilot access is suspended or
  terminated by the abuse rules (`abuse.py`).
- `limits_reserve(...)`: reserve the call against the tenant's effective limits, atomically
  (`limits.call_admit`); raises `RateLimitExceeded` (429 `rate_limited` with Retry-After,
  naming the limit; the refusal is a strike) or `LimitsUnavailable` (503, unless
  `USAGE_LIMITS_FAIL_OPEN`), and records threshold warnings.
- `limits_settle(...)`: after the call, correct the reservation to the tokens really used,
  give it back when nothing was sent upstream, or keep the estimate when the tokens used
  cannot be known.
- `usage_record_create(...)`: one `UsageRecord` per call that passed the access checks, and
  the call's daily and hourly roll-ups; a content-filter refusal is a strike.
  Metadata only, never content.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from django.db import transaction

from copilot_admin.usage import abuse, limits, rollups
from copilot_admin.usage.errors import RateLimitExceeded
from copilot_admin.usage.models import StrikeKind, UsageOutcome, UsageRecord
from tenants.models import Membership

__all__ = ["RateLimitExceeded", "copilot_access_state", "limits_reserve", "limits_settle", "usage_record_create"]

AccessState = Literal["active", "suspended", "terminated"]


@dataclass(frozen=True)
class LimitReservation:
    """What `limits_reserve` took for one call, so `limits_settle` can correct exactly that.

    `handle` is the `limits.Admission` (the counter engine's receipt and the limits applied).
    """

    membership_id: int
    tenant_id: int
    feature: str
    estimated_tokens: int
    handle: object | None = None


def copilot_access_state(membership: Membership) -> AccessState:
    """The user's copilot access in this tenant: active, suspended (for a period) or terminated."""
    return abuse.access_state(membership)


def limits_reserve(*, membership: Membership, feature: str, estimated_tokens: int) -> LimitReservation:
    """Reserve one request and `estimated_tokens` against every limit that applies, all or none.

    Raises `RateLimitExceeded` when a limit refuses, `LimitsUnavailable` when the counters
    cannot be reached (and fail-open is off); then nothing was reserved.
    """
    admission = limits.call_admit(membership=membership, feature=feature, estimated_tokens=estimated_tokens)
    return LimitReservation(
        membership_id=membership.pk, tenant_id=membership.tenant_id, feature=feature, estimated_tokens=estimated_tokens,
        handle=admission,
    )


def limits_settle(
    *,
    reservation: LimitReservation,
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
    limits.call_settle(
        admission=reservation.handle, sent=sent, prompt_tokens=prompt_tokens, completion_tokens=completion_tokens,
        keep_estimate=keep_estimate,
    )


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
) -> UsageRecord:
    """Record one copilot call (metadata only), add it to the daily and hourly roll-ups, and
    count a content-filter refusal as a strike against the user."""
    tenant = membership.tenant
    with transaction.atomic():
        record = _usage_record_insert(
            membership=membership, feature=feature, zone=zone, outcome=outcome, request_id=request_id,
            deployment=deployment, attempts=attempts, prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens, latency_ms=latency_ms, error_code=error_code,
            upstream_request_id=upstream_request_id, template_version=template_version,
        )
        rollups.usage_rollup_add(tenant=tenant, membership_id=membership.pk, feature=feature, at=record.created_at,
                                 **_rollup_numbers(outcome=outcome, error_code=error_code, prompt_tokens=prompt_tokens,
                                                   completion_tokens=completion_tokens))
    if error_code == CONTENT_FILTERED:
        abuse.strike_record(membership=membership, kind=StrikeKind.CONTENT_FILTER)
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


def _usage_record_insert(
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
) -> UsageRecord:
    tenant = membership.tenant
    return UsageRecord.objects.for_tenant(tenant).create(
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
    )
