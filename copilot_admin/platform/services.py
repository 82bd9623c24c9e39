"""Writes of the operator console: tenants (create, plan, zone, status). Platform operators only;
each function runs in one transaction, checks its actor and records its change in the
tenant's audit log."""

from django.db import transaction
from knox.models import AuthToken

from copilot_admin.access.permissions import PlatformPerm
from copilot_admin.access.policy import permission_require
from copilot_admin.access.services import roles_seed_system
from copilot_admin.audit.services import audit_change_record, audit_event_record, audit_snapshot
from copilot_admin.core.errors import ApplicationError
from copilot_admin.directory.services import tenant_admin_invite
from copilot_admin.regions.models import DataZone
from tenants.models import Membership, Tenant, TenantStatus, User, UserSession


def _ensure_operator(actor: User) -> None:
    permission_require(actor=actor, permission=PlatformPerm.OPERATOR, message="Only platform operators manage tenants.")


@transaction.atomic
def tenant_create(
    *, actor: User | None, name: str, slug: str, plan: str, zone: DataZone, admin_email: str = ""
) -> Tenant:
    """A new tenant with its system roles and, with `admin_email`, the invitation of its first
    administrator (e-mailed after commit). `actor` None only for the demo seed."""
    if actor is not None:
        _ensure_operator(actor)
    if Tenant.objects.filter(slug=slug).exists():
        raise ApplicationError(f"The slug {slug!r} is taken.", code="duplicate", fields={"slug": ["taken"]})
    tenant = Tenant.objects.create(name=name, slug=slug, plan=plan, zone=zone)
    audit_change_record(actor=actor, tenant=tenant, instance=tenant)
    roles_seed_system(actor=actor, tenant=tenant)
    if admin_email:
        tenant_admin_invite(actor=actor, tenant=tenant, email=admin_email)
    return tenant


@transaction.atomic
def tenant_update(*, actor: User, tenant: Tenant, **changes) -> Tenant:
    """Operators change name, plan, data zone and status. Suspending ends the tenant's
    users' sessions and API tokens after commit."""
    _ensure_operator(actor)
    tenant = Tenant.objects.select_for_update().get(pk=tenant.pk)
    before = audit_snapshot(tenant)
    suspending = changes.get("status") == TenantStatus.SUSPENDED and tenant.status != TenantStatus.SUSPENDED
    for field in ("name", "plan", "zone", "status"):
        if field in changes:
            setattr(tenant, field, changes[field])
    tenant.save()
    audit_change_record(actor=actor, tenant=tenant, instance=tenant, before=before)
    if suspending:
        transaction.on_commit(lambda: tenant_end_sessions(tenant=tenant))
    return tenant


def tenant_end_sessions(*, tenant: Tenant) -> int:
    """End the login sessions and API tokens of every accepted, active member of `tenant`.
    Returns how many ended."""
    # Sessions and tokens belong to users, not tenants: end those of every member. Only the accounts that are members here: an invitation gives no hold over an account.
    user_ids = list(Membership.objects.for_tenant(tenant).granting_access().values_list("user_id", flat=True))
    sessions, _ = UserSession.objects.filter(user_id__in=user_ids).delete()
    tokens, _ = AuthToken.objects.filter(user_id__in=user_ids).delete()
    audit_event_record(
        tenant=tenant, actor=None, action="tenant.sessions_ended", object_type="tenant", object_id=tenant.pk,
        object_repr=tenant.name, metadata={"sessions": sessions, "tokens": tokens, "users": len(user_ids)},
    )
    return sessions + tokens


