"""Actions of the auditor's room. The audit log itself is written and read by `audit/` (the
recorder, below `access/`); what a member asks of it passes the policy function here first."""

from copilot_admin.access.permissions import Perm
from copilot_admin.access.policy import permission_require
from copilot_admin.audit.services import audit_export_open
from tenants.models import Membership


def audit_export_start(*, actor: Membership, filters: dict, fmt: str, request=None):
    """Start an export of the actor's tenant's audit log (`audit.export`): recorded, then
    (filename, content type, stream of bytes); see `audit_export_open`."""
    permission_require(actor=actor, permission=Perm.AUDIT_EXPORT)
    return audit_export_open(tenant=actor.tenant, actor=actor.user, filters=filters, fmt=fmt, request=request)
