"""What the access base classes (pages and API) report to the audit log: refusals of a
member's request by its security role, and a platform operator's access to a tenant's pages
and API."""

from copilot_admin.audit.models import Outcome
from copilot_admin.audit.services import audit_event_record


def _route(request) -> str:
    match = getattr(request, "resolver_match", None)
    return (match.view_name if match else "") or request.path


def audit_access_denied(*, request, membership, permission, code: str = "permission_denied") -> None:
    """A member asked for something its security role does not allow (recorded, then refused)."""
    audit_event_record(
        tenant=membership.tenant,
        actor=request.user,
        action="access.denied",
        object_type="route",
        object_id=_route(request),
        outcome=Outcome.DENIED,
        request=request,
        metadata={"method": request.method, "path": request.path, "permission": str(permission), "code": code},
    )


def audit_operator_tenant_access(*, request, tenant) -> None:
    """A platform operator opened one of the tenant's pages or API routes: the tenant's
    auditors see it (`via` says which: web or api)."""
    audit_event_record(
        tenant=tenant,
        actor=request.user,
        action="operator.tenant_access",
        object_type="route",
        object_id=_route(request),
        request=request,
        metadata={"method": request.method, "path": request.path},
    )
