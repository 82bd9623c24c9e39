"""Access review campaigns (writes and reads).

An auditor (`audit.view`) starts a campaign: each member's access at that moment is captured
from the access review. The tenant administrator (`admin.users`) confirms each member's access
or flags it, and a flag carries the change it calls for (another role, or deactivation), made
through the directory's own service in the same transaction. Nobody decides on their own
access. The auditor completes the campaign once every member is decided; the finished review
(who decided what, when, and what changed) is exported as CSV (`audit.export`). Every step is
recorded in the audit log.
"""

import csv
import io

from django.db import transaction
from django.utils import timezone

from copilot_admin.access.models import SecurityRole
from copilot_admin.access.permissions import Perm
from copilot_admin.access.policy import permission_require
from copilot_admin.audit.services import audit_event_record
from copilot_admin.compliance.models import CampaignStatus, Decision, ReviewCampaign, ReviewItem
from copilot_admin.compliance.review import access_review
from copilot_admin.compliance.review_selectors import campaign_items
from copilot_admin.core.errors import ApplicationError, Conflict
from copilot_admin.directory.services import membership_update
from tenants.models import Membership

OBJECT_TYPE = "access_review"
EXPORT_COLUMNS = (
    "email", "user_type", "role", "permissions", "companies", "is_active", "copilot_access", "decision", "change",
    "note", "decided_by", "decided_at",
)


@transaction.atomic
def campaign_start(*, actor: Membership, name: str) -> ReviewCampaign:
    """Start a review of every member's access now (`audit.view`)."""
    permission_require(actor=actor, permission=Perm.AUDIT_VIEW)
    tenant, at = actor.tenant, timezone.now()
    campaign = ReviewCampaign.objects.for_tenant(tenant).create(
        tenant=tenant, name=name.strip()[:120] or f"Access review {at:%Y-%m-%d}", at=at, started_by=actor.user,
    )
    members = {m.user.email: m for m in Membership.objects.for_tenant(tenant).select_related("user")}
    ReviewItem.objects.for_tenant(tenant).bulk_create([
        ReviewItem(tenant=tenant, campaign=campaign, membership=members.get(row.email), email=row.email,
                   user_type=row.user_type, role=row.role, permissions=row.permissions, companies=row.companies,
                   is_active=row.is_active, copilot_access=row.copilot_access)
        for row in access_review(tenant=tenant, at=at)
    ])
    audit_event_record(tenant=tenant, actor=actor, action="access_review.start", object_type=OBJECT_TYPE,
                       object_id=campaign.pk, object_repr=campaign.name,
                       metadata={"members": campaign.items.count(), "at": at.isoformat()})
    return campaign


def _open_item(*, actor: Membership, item: ReviewItem) -> ReviewItem:
    item = ReviewItem.objects.for_tenant(actor.tenant).select_for_update().select_related("campaign").get(pk=item.pk)
    if item.campaign.status != CampaignStatus.OPEN:
        raise Conflict("This review is completed: its decisions are final.", code="review_completed")
    if item.decision != Decision.PENDING:
        raise Conflict("This member's access is decided already.", code="already_decided")
    if item.membership_id is not None and item.membership_id == actor.pk:
        raise Conflict("Someone else decides on your own access.", code="own_access")
    return item


@transaction.atomic
def campaign_item_decide(
    *, actor: Membership, item: ReviewItem, decision: str, note: str = "", role: SecurityRole | None = None,
    deactivate: bool = False,
) -> ReviewItem:
    """Confirm a member's access, or flag it with the change it calls for (`admin.users`):
    another `role`, or `deactivate`; the change is made here, through the directory service."""
    permission_require(actor=actor, permission=Perm.USERS, tenant=item.tenant_id)
    item = _open_item(actor=actor, item=item)
    change = ""
    if decision == Decision.FLAGGED:
        if role is None and not deactivate:
            raise ApplicationError("A flag needs the change it calls for: another role, or deactivation.",
                                   code="change_required", fields={"role": ["Choose a role or deactivate."]})
        if item.membership_id is None:
            raise Conflict("This member is no longer in the tenant: nothing to change.", code="member_gone")
        changes = {}
        if role is not None:
            changes["role"] = role
            change = f"role {item.role} -> {role.name}"
        if deactivate:
            changes["is_active"] = False
            change = "; ".join(filter(None, [change, "deactivated"]))
        membership_update(actor=actor, membership=item.membership, **changes)
    elif decision != Decision.CONFIRMED:
        raise ApplicationError("Decide `confirmed` or `flagged`.", code="invalid", fields={"decision": ["invalid"]})
    item.decision, item.change, item.note = decision, change, note.strip()[:255]
    item.decided_by, item.decided_by_email, item.decided_at = actor.user, actor.user.email, timezone.now()
    item.save(update_fields=["decision", "change", "note", "decided_by", "decided_by_email", "decided_at"])
    audit_event_record(tenant=actor.tenant, actor=actor, action=f"access_review.{decision}", object_type=OBJECT_TYPE,
                       object_id=item.campaign_id, object_repr=item.email,
                       changes={"decision": [Decision.PENDING, decision]}, metadata={"change": change} if change else {})
    return item


@transaction.atomic
def campaign_complete(*, actor: Membership, campaign: ReviewCampaign) -> ReviewCampaign:
    """Close the review once every member is decided (`audit.view`)."""
    permission_require(actor=actor, permission=Perm.AUDIT_VIEW, tenant=campaign.tenant_id)
    campaign = ReviewCampaign.objects.for_tenant(actor.tenant).select_for_update().get(pk=campaign.pk)
    if campaign.status != CampaignStatus.OPEN:
        raise Conflict("This review is completed already.", code="review_completed")
    pending = campaign_items(campaign=campaign).filter(decision=Decision.PENDING).count()
    if pending:
        raise Conflict(f"{pending} member(s) are not decided yet.", code="items_pending")
    campaign.status, campaign.completed_at, campaign.completed_by = CampaignStatus.COMPLETED, timezone.now(), actor.user
    campaign.save(update_fields=["status", "completed_at", "completed_by"])
    items = campaign_items(campaign=campaign)
    audit_event_record(tenant=actor.tenant, actor=actor, action="access_review.complete", object_type=OBJECT_TYPE,
                       object_id=campaign.pk, object_repr=campaign.name,
                       metadata={"confirmed": items.filter(decision=Decision.CONFIRMED).count(),
                                 "flagged": items.filter(decision=Decision.FLAGGED).count()})
    return campaign


def _csv_stream(items):
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(EXPORT_COLUMNS)
    yield buffer.getvalue().encode()
    for item in items:
        buffer.seek(0)
        buffer.truncate()
        writer.writerow([
            item.email, item.user_type, item.role, " ".join(item.permissions), "; ".join(item.companies),
            "yes" if item.is_active else "no", item.copilot_access, item.decision, item.change, item.note,
            item.decided_by_email, item.decided_at.isoformat() if item.decided_at else "",
        ])
        yield buffer.getvalue().encode()


@transaction.atomic
def campaign_export_start(*, actor: Membership, campaign: ReviewCampaign):
    """The review's decisions as CSV (`audit.export`), recorded: (filename, stream of bytes)."""
    permission_require(actor=actor, permission=Perm.AUDIT_EXPORT, tenant=campaign.tenant_id)
    audit_event_record(tenant=actor.tenant, actor=actor, action="access_review.export", object_type=OBJECT_TYPE,
                       object_id=campaign.pk, object_repr=campaign.name, metadata={"status": campaign.status})
    items = list(campaign_items(campaign=campaign))
    return f"access-review-{campaign.tenant.slug}-{campaign.pk}.csv", _csv_stream(items)
