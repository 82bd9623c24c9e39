"""The usage room's badges on members (access/member_badges.py): copilot access suspended
(until when, the case) or terminated (until a platform operator reinstates)."""

from django.utils import timezone

from copilot_admin.access.member_badges import MemberBadge, member_badge_source_register
from copilot_admin.core.humanize import moment_words
from copilot_admin.usage.models import AbuseCase, AccessStatus, CaseKind, CopilotAccess


def _copilot_access_badges(tenant, memberships) -> dict:
    now = timezone.now()
    ids = [m.pk for m in memberships]
    restricted = [
        access for access in CopilotAccess.objects.for_tenant(tenant).filter(membership_id__in=ids).exclude(
            status=AccessStatus.ACTIVE)
        if access.state_at(now) != AccessStatus.ACTIVE
    ]
    if not restricted:
        return {}
    latest_case = {}
    cases = (
        AbuseCase.objects.for_tenant(tenant)
        .filter(membership_id__in=[a.membership_id for a in restricted],
                kind__in=[CaseKind.SUSPENSION, CaseKind.TERMINATION])
        .order_by("membership_id", "-opened_at", "-pk")
        .values_list("membership_id", "pk")
    )
    for membership_id, case_pk in cases:
        latest_case.setdefault(membership_id, case_pk)
    badges = {}
    for access in restricted:
        case_pk = latest_case.get(access.membership_id)
        link = {"url_name": "usage:abuse_case", "url_kwargs": {"pk": case_pk}} if case_pk else {}
        if access.status == AccessStatus.SUSPENDED:
            badge = MemberBadge(
                label="copilot suspended",
                detail=f"Copilot access suspended until {moment_words(access.suspended_until, now=now)}."
                if access.suspended_until else "Copilot access suspended.",
                **link,
            )
        else:
            badge = MemberBadge(
                label="copilot terminated", tone="danger",
                detail="Copilot access terminated until a platform operator reinstates it.", **link,
            )
        badges[access.membership_id] = [badge]
    return badges


def register() -> None:
    member_badge_source_register(key="copilot_access", source=_copilot_access_badges)
