"""Anomalies against a baseline: usage far outside what is normal for this user and its peers.

Every hour (Celery beat, `usage.tasks.review_anomalies`) `anomalies_review` looks at the last
whole UTC hour of every active tenant, from the hourly roll-ups only (`HourlyUsage`: one row per
user and hour), never the usage records: its cost follows the number of users, not the history.

For each user who made at least `anomaly_min_requests` calls in that hour:

- **own baseline**: the user's calls (and tokens) in the same hour of the week over the last
  `anomaly_baseline_weeks` weeks (default 4), a week without a row counting as 0;
- **peer baseline**: the same hours of the tenant's other members of the same user type
  (technicians with technicians, co-managed users with co-managed users), counting only the
  hours in which a peer was active (what a peer does when it works, not the idle ones);
- **score**: a robust z-score, `(x - median) / scale`, `scale = max(1.4826 * MAD, 10% of the
  median, floor)` (1.4826 * MAD estimates the standard deviation of normal data; the floors
  keep a flat or empty history from making every call infinitely unusual: 1 call, 1,000 tokens).

A case opens when the calls, or the tokens, score above `anomaly_z_threshold` (default 6)
against **both** baselines (a peer baseline without samples is not a reason to open one). Six
robust deviations is far beyond the ~3.5 usually taken as an outlier: the rule is for abuse
(a looping integration, a leaked key), not for a busy afternoon. At most one open anomaly case
per user (a running anomaly does not open one per hour); the evidence is written in plain
words in the summary and kept with the chart's numbers in `details`. Nothing is suspended
unless the tenant turned `anomaly_auto_suspend` on; the tenant's administrators are e-mailed
and `abuse.case_opened` is emitted (`alerts.case_opened_notify`). A dismissal is recorded on
the case and teaches the baseline nothing.
"""

from __future__ import annotations

import logging
import statistics
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db import IntegrityError, transaction
from django.utils import timezone

from copilot_admin.audit.services import audit_change_record, audit_snapshot
from copilot_admin.usage import alerts
from copilot_admin.usage.limits import EffectiveLimits
from copilot_admin.usage.models import (
    AbuseCase,
    AccessStatus,
    CaseKind,
    CaseStatus,
    CopilotAccess,
    HourlyUsage,
    NotificationKind,
)
from copilot_admin.usage.selectors import effective_limits, platform_policy
from tenants.models import Membership, Tenant, TenantStatus, UserType

logger = logging.getLogger(__name__)

MAD_TO_SIGMA = 1.4826
MIN_SCALE = {"calls": 1.0, "tokens": 1000.0}
RELATIVE_MIN_SCALE = 0.10
PEER_LABELS = {UserType.INTERNAL: "technicians", UserType.CO_MANAGED: "co-managed users"}


@dataclass(frozen=True)
class Baseline:
    """Samples of one quantity (calls or tokens per hour) and their robust centre and spread."""

    samples: tuple[float, ...]
    median: float
    scale: float

    @classmethod
    def of(cls, samples, *, unit: str) -> Baseline | None:
        values = tuple(float(v) for v in samples)
        if not values:
            return None
        median = statistics.median(values)
        mad = statistics.median(abs(v - median) for v in values)
        scale = max(MAD_TO_SIGMA * mad, RELATIVE_MIN_SCALE * median, MIN_SCALE[unit])
        return cls(samples=values, median=median, scale=scale)

    def score(self, value: float) -> float:
        """The robust z-score of `value` against this baseline."""
        return (value - self.median) / self.scale

    def usual(self) -> tuple[int, int]:
        """The usual range in words: lowest to highest of few samples, 10th to 90th percentile of many."""
        values = sorted(self.samples)
        if len(values) < 10:
            return round(values[0]), round(values[-1])
        deciles = statistics.quantiles(values, n=10, method="inclusive")
        return round(deciles[0]), round(deciles[-1])


def _text_range(low: int, high: int) -> str:
    return str(low) if low == high else f"{low}-{high}"


def _hour_name(hour: datetime) -> str:
    return f"{hour:%A %H:00} UTC"


@dataclass(frozen=True)
class Finding:
    """One user's hour scored against its own and its peers' baselines."""

    membership_id: int
    email: str
    user_type: str
    hour: datetime
    calls: int
    tokens: int
    own: dict[str, Baseline]
    peers: dict[str, Baseline | None]
    weekly_calls: tuple[int, ...]

    def scores(self) -> dict[str, dict[str, float | None]]:
        values = {"calls": self.calls, "tokens": self.tokens}
        return {
            unit: {
                "own": round(self.own[unit].score(values[unit]), 1),
                "peers": round(self.peers[unit].score(values[unit]), 1) if self.peers[unit] else None,
            }
            for unit in values
        }

    def anomalous(self, *, threshold: float) -> list[str]:
        """The quantities (calls, tokens) far outside both baselines."""
        return [
            unit for unit, score in self.scores().items()
            if score["own"] > threshold and score["peers"] is not None and score["peers"] > threshold
        ]

    def evidence(self, *, weeks: int) -> str:
        """Plain words: "412 calls in the hour; this user's usual for Tuesday 10:00 UTC is 9-20; ..."."""
        when = _hour_name(self.hour)
        peers = PEER_LABELS.get(self.user_type, "peers")
        parts = [f"{self.calls} calls and {self.tokens} tokens in the hour from {self.hour:%Y-%m-%d %H:00} UTC"]
        parts.append(f"this user's usual for {when} is {_text_range(*self.own['calls'].usual())} calls "
                     f"(last {weeks} weeks)")
        if self.peers["calls"] is not None:
            parts.append(f"the tenant's {peers} {_text_range(*self.peers['calls'].usual())}")
        return "; ".join(parts)

    def details(self, *, threshold: float, weeks: int, anomalous: list[str]) -> dict:
        """What the case keeps: the numbers, the scores, the rule, and the chart's series."""
        peer_calls = self.peers["calls"]
        return {
            "rule": "baseline",
            "hour": self.hour.isoformat(),
            "hour_of_week": _hour_name(self.hour),
            "calls": self.calls,
            "tokens": self.tokens,
            "anomalous": anomalous,
            "scores": self.scores(),
            "z_threshold": threshold,
            "baseline_weeks": weeks,
            "own_usual_calls": list(self.own["calls"].usual()),
            "own_usual_tokens": list(self.own["tokens"].usual()),
            "own_median_calls": self.own["calls"].median,
            "peer_group": PEER_LABELS.get(self.user_type, "peers"),
            "peer_usual_calls": list(peer_calls.usual()) if peer_calls else None,
            "peer_usual_tokens": list(self.peers["tokens"].usual()) if self.peers["tokens"] else None,
            "peer_samples": len(peer_calls.samples) if peer_calls else 0,
            "chart": {
                "labels": [*(f"{k} week{'s' if k > 1 else ''} earlier" for k in range(weeks, 0, -1)), "this hour"],
                "calls": [*self.weekly_calls, self.calls],
                "peer_low": peer_calls.usual()[0] if peer_calls else None,
                "peer_high": peer_calls.usual()[1] if peer_calls else None,
            },
        }


def tenant_findings(*, tenant: Tenant, limits: EffectiveLimits, hour: datetime) -> list[Finding]:
    """Score every user of the tenant who made at least `anomaly_min_requests` calls in `hour`.

    Two queries whatever the history: the hour's busy rows, then the same hour of the
    previous `anomaly_baseline_weeks` weeks for the whole tenant (index on tenant and hour)."""
    weeks = limits.anomaly_baseline_weeks
    busy = list(
        HourlyUsage.objects.for_tenant(tenant)
        .filter(hour=hour, requests__gte=limits.anomaly_min_requests)
        .values_list("membership_id", "requests", "tokens", "membership__user_type", "membership__user__email")
    )
    if not busy:
        return []
    earlier = [hour - timedelta(weeks=k) for k in range(weeks, 0, -1)]
    rows = (
        HourlyUsage.objects.for_tenant(tenant)
        .filter(hour__in=earlier)
        .values_list("membership_id", "hour", "requests", "tokens", "membership__user_type")
    )
    by_member: dict[int, dict[datetime, tuple[int, int]]] = defaultdict(dict)
    by_type: dict[str, list[tuple[int, int, int]]] = defaultdict(list)
    for membership_id, at, requests, tokens, user_type in rows:
        by_member[membership_id][at] = (requests, tokens)
        by_type[user_type].append((membership_id, requests, tokens))
    findings = []
    for membership_id, calls, tokens, user_type, email in busy:
        own_weeks = [by_member[membership_id].get(at, (0, 0)) for at in earlier]
        peer_rows = [(r, t) for member, r, t in by_type[user_type] if member != membership_id]
        findings.append(Finding(
            membership_id=membership_id, email=email, user_type=user_type, hour=hour, calls=calls, tokens=tokens,
            own={"calls": Baseline.of([r for r, _ in own_weeks], unit="calls"),
                 "tokens": Baseline.of([t for _, t in own_weeks], unit="tokens")},
            peers={"calls": Baseline.of([r for r, _ in peer_rows], unit="calls"),
                   "tokens": Baseline.of([t for _, t in peer_rows], unit="tokens")},
            weekly_calls=tuple(r for r, _ in own_weeks),
        ))
    return findings


def _case_open(*, tenant: Tenant, limits: EffectiveLimits, finding: Finding, anomalous: list[str],
               now: datetime) -> AbuseCase | None:
    """Open the anomaly case (and suspend, when the tenant says so), in one transaction."""
    weeks = limits.anomaly_baseline_weeks
    with transaction.atomic():
        membership = Membership.objects.for_tenant(tenant).select_related("user", "tenant").get(
            pk=finding.membership_id
        )
        try:
            with transaction.atomic():
                case = AbuseCase.objects.for_tenant(tenant).create(
                    tenant=tenant, membership=membership, kind=CaseKind.ANOMALY,
                    summary=finding.evidence(weeks=weeks)[:255],
                    details=finding.details(threshold=limits.anomaly_z_threshold, weeks=weeks, anomalous=anomalous),
                    opened_at=now, dedupe_key=f"anomaly:{membership.pk}:{finding.hour:%Y-%m-%dT%H}",
                )
                audit_change_record(actor=None, tenant=tenant, instance=case)  # the system opens it
        except IntegrityError:
            return None  # this hour of this user was judged already
        if limits.anomaly_auto_suspend:
            _suspend_for(case=case, membership=membership, limits=limits, now=now)
        alerts.case_opened_notify(case=case)
    return case


def _suspend_for(*, case: AbuseCase, membership: Membership, limits: EffectiveLimits, now: datetime) -> None:
    """The tenant suspends on anomalies: the access is suspended like a strike-out would."""
    queryset = CopilotAccess.objects.for_tenant(membership.tenant)
    access = queryset.select_for_update().filter(membership_id=membership.pk).first()
    if access is None:
        try:
            with transaction.atomic():
                access = queryset.create(tenant=membership.tenant, membership=membership)
                audit_change_record(actor=None, tenant=membership.tenant, instance=access)
        except IntegrityError:
            pass
        access = queryset.select_for_update().get(membership_id=membership.pk)
    if access.state_at(now) != AccessStatus.ACTIVE:
        return
    until = now + timedelta(minutes=limits.suspension_minutes)
    before = audit_snapshot(access)
    access.status = AccessStatus.SUSPENDED
    access.suspended_until = until
    access.reason = f"Unusual usage (case {case.pk}): suspended by the tenant's anomaly rule"[:255]
    access.changed_at = now
    access.save()
    audit_change_record(actor=None, tenant=membership.tenant, instance=access, before=before)
    case_before = audit_snapshot(case)
    case.suspended_until = until
    case.save(update_fields=["suspended_until"])
    audit_change_record(actor=None, tenant=membership.tenant, instance=case, before=case_before)
    case.membership = membership
    alerts.access_change_notify(
        case=case, kind=NotificationKind.ACCESS_SUSPENDED,
        reason=f"unusual usage: {case.summary} (until {until:%Y-%m-%d %H:%M} UTC)",
    )


def anomalies_review(*, now: datetime | None = None) -> list[AbuseCase]:
    """Judge the last whole hour of every active tenant; returns the cases opened."""
    now = now or timezone.now()
    hour = now.replace(minute=0, second=0, microsecond=0) - timedelta(hours=1)
    platform = platform_policy()
    opened: list[AbuseCase] = []
    for tenant in Tenant.objects.filter(status=TenantStatus.ACTIVE):
        limits = effective_limits(tenant, platform=platform)
        findings = tenant_findings(tenant=tenant, limits=limits, hour=hour)
        flagged = [(f, f.anomalous(threshold=limits.anomaly_z_threshold)) for f in findings]
        flagged = [(f, units) for f, units in flagged if units]
        if not flagged:
            continue
        skip = set(
            AbuseCase.objects.for_tenant(tenant)
            .filter(kind=CaseKind.ANOMALY, status=CaseStatus.OPEN, membership_id__in=[f.membership_id for f, _ in flagged])
            .values_list("membership_id", flat=True)
        ) | set(
            CopilotAccess.objects.for_tenant(tenant)
            .filter(status=AccessStatus.TERMINATED, membership_id__in=[f.membership_id for f, _ in flagged])
            .values_list("membership_id", flat=True)
        )
        for finding, units in flagged:
            if finding.membership_id in skip:
                continue
            try:
                case = _case_open(tenant=tenant, limits=limits, finding=finding, anomalous=units, now=now)
            except Exception:  # noqa: BLE001 - one case failing must not stop the review
                logger.exception("Opening an anomaly case failed (tenant %s).", tenant.pk)
                continue
            if case is not None:
                opened.append(case)
    if opened:
        logger.info("Anomaly review opened %s case(s).", len(opened))
    return opened
