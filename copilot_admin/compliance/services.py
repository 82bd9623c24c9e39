"""Actions of the auditor's room. The audit log itself is written and read by `audit/` (the
recorder, below `access/`); what a member asks of it passes the policy function here first."""

from copilot_admin.access.permissions import Perm, PlatformPerm
from copilot_admin.access.policy import permission_require
from copilot_admin.audit.services import audit_export_across_open, audit_export_open
from tenants.models import Membership, User


def audit_export_start(*, actor: Membership, filters: dict, fmt: str, request=None):
    """Start an export of the actor's tenant's audit log (`audit.export`): recorded, then
    (filename, content type, stream of bytes); see `audit_export_open`."""
    permission_require(actor=actor, permission=Perm.AUDIT_EXPORT)
    return audit_export_open(tenant=actor.tenant, actor=actor.user, filters=filters, fmt=fmt, request=request)


def platform_audit_export_start(*, actor: User, filters: dict, fmt: str, request=None):
    """Start an export of every tenant's audit log, or one tenant's (`filters["tenant"]`), for a
    platform auditor or operator (`platform.auditor`): recorded, then (filename, content type,
    stream of bytes) with each entry's tenant and hash; see `audit_export_across_open`."""
    permission_require(actor=actor, permission=PlatformPerm.AUDITOR)
    return audit_export_across_open(actor=actor, filters=filters, fmt=fmt, request=request)
