"""The daily e-mail of signed checkpoints: copies kept outside the database, in the auditors'
mailboxes. Each active member whose role holds `audit.export` or `audit.view` and not a tenant
administration permission (the auditors, not the administrators of what is audited) receives
the tenant's checkpoints of the previous UTC day as the JSON file `audit_verify --checkpoints`
reads. No ticket content is in a checkpoint (counts, hashes, times, signatures)."""

import json
from datetime import UTC, datetime, time, timedelta

from django.conf import settings
from django.core.cache import cache
from django.core.mail import EmailMessage
from django.utils import timezone

from copilot_admin.access.permissions import Perm
from copilot_admin.access.policy import has_permission
from copilot_admin.audit.checkpoints import audit_checkpoints, checkpoints_document
from tenants.models import Membership, Tenant, TenantStatus

_ADMIN_PERMISSIONS = (Perm.USERS, Perm.ROLES)


def checkpoint_auditors(*, tenant) -> list[str]:
    """E-mail addresses of the tenant's auditors (see the module docstring)."""
    members = Membership.objects.for_tenant(tenant).filter(is_active=True, accepted_at__isnull=False)
    return sorted(
        m.user.email for m in members.select_related("user", "role", "tenant")
        if has_permission(m, Perm.AUDIT_VIEW) and not any(has_permission(m, p) for p in _ADMIN_PERMISSIONS)
    )


def checkpoints_mail(*, tenant, day) -> bool:
    """Send `tenant`'s checkpoints of UTC `day` to its auditors, once (a second call for the
    same day sends nothing). Returns whether it sent."""
    recipients = checkpoint_auditors(tenant=tenant)
    start = datetime.combine(day, time.min, tzinfo=UTC)
    checkpoints = list(audit_checkpoints(tenant=tenant).filter(at__gte=start, at__lt=start + timedelta(days=1)))
    if not recipients or not checkpoints:
        return False
    if not cache.add(f"checkpoint-mail:{tenant.pk}:{day.isoformat()}", 1, timeout=3 * 86400):
        return False
    document = checkpoints_document(tenant=tenant, checkpoints=reversed(checkpoints))
    message = EmailMessage(
        subject=f"[copilot-admin] Audit checkpoints of {tenant.name}, {day.isoformat()}",
        body=(f"Attached: the {len(checkpoints)} signed checkpoints of {tenant.name}'s audit log sealed on "
              f"{day.isoformat()} (UTC). Keep the file outside copilot-admin: "
              "`python manage.py audit_verify --checkpoints FILE` checks the audit log against it.\n"),
        to=recipients,
    )
    message.attach(f"audit-checkpoints-{tenant.slug}-{day.isoformat()}.json", json.dumps(document, indent=1),
                   "application/json")
    message.send()
    return True


def checkpoints_mail_all(*, now=None) -> int:
    """The previous UTC day's checkpoints of every active tenant; returns how many e-mails."""
    if not settings.AUDIT_CHECKPOINT_EMAIL:
        return 0
    day = (now or timezone.now()).astimezone(UTC).date() - timedelta(days=1)
    return sum(checkpoints_mail(tenant=tenant, day=day)
               for tenant in Tenant.objects.filter(status=TenantStatus.ACTIVE).order_by("pk"))
