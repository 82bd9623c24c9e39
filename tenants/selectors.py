"""Reads of tenancy. Lookups by id take the acting membership and answer missing and
foreign alike (NotFound)."""

from datetime import datetime

from django.db.models import QuerySet

from copilot_admin.core.errors import NotFound
from copilot_admin.core.versioned_cache import Read, cached, tenant_scope, user_scope
from tenants.models import ClientCompany, Membership, Tenant, User


def membership_resolve(*, user: User, tenant_slug: str, issued_at: datetime | None) -> Membership:
    """The user's accepted, active membership in the tenant; NotFound when the tenant is
    missing, the user is not an accepted active member (a pending invitation grants nothing),
    or the request's credential (`issued_at`, see tenants.sessions.credential_issued_at;
    None only for server-side callers) predates the membership's last deactivation. A
    stranger cannot learn that a tenant exists."""
    if not user.is_authenticated or not user.is_active:
        raise NotFound("Not found.")
    membership = membership_granting_access(tenant_slug=tenant_slug, user_id=user.pk)
    if membership is None or membership.credential_refused(issued_at):
        raise NotFound("Not found.")
    return membership


def membership_read(*, tenant_slug: str, user_id: int) -> Read:
    """The versioned read (key, scopes) of `membership_resolve`, for a request's read plan."""
    return f"membership:{tenant_slug}:{user_id}", (tenant_scope(tenant_slug), user_scope(user_id))


def membership_granting_access(*, tenant_slug: str, user_id: int) -> Membership | None:
    """The user's accepted, active membership in the tenant (with its role, user, tenant and
    zone), or None; from the versioned cache (`membership_read`)."""
    return cached(
        *membership_read(tenant_slug=tenant_slug, user_id=user_id),
        lambda: _membership_granting_access(user_id=user_id, tenant_slug=tenant_slug),
    )


def _membership_granting_access(*, user_id: int, tenant_slug: str) -> Membership | None:
    tenant = Tenant.objects.filter(slug=tenant_slug).first()
    if tenant is None:
        return None
    return (
        Membership.objects.for_tenant(tenant)
        .select_related("role", "user", "tenant", "tenant__zone")
        .granting_access()
        .filter(user_id=user_id)
        .first()
    )


def company_scope(*, membership: Membership) -> dict[int, bool]:
    """{company id: is active} of `companies_in_scope(membership)`, from the versioned cache (the
    copilot call checks its company against them: only an active one is in its copilot scope)."""
    return cached(
        *company_scope_read(tenant_slug=membership.tenant.slug, membership_id=membership.pk),
        lambda: dict(companies_in_scope(membership=membership).values_list("pk", "is_active")),
    )


def company_scope_read(*, tenant_slug: str, membership_id: int) -> Read:
    """The versioned read (key, scopes) of `company_scope`, for a request's read plan."""
    return f"company-scope:{tenant_slug}:{membership_id}", (tenant_scope(tenant_slug),)


def memberships_of_user(*, user: User) -> QuerySet[Membership]:
    """The tenants a user belongs to (the tenant switcher, where its security events are
    recorded): its accepted, active memberships."""
    # unscoped(): this lists one user's own memberships across tenants (the tenant switcher).
    return (
        Membership.objects.unscoped()
        .granting_access()
        .filter(user=user)
        .select_related("tenant")
        .order_by("tenant__name")
    )


def companies_in_scope(*, membership: Membership) -> QuerySet[ClientCompany]:
    """All companies for internal users; for a co-managed user only the co-managed companies it is
    bound to. Deactivated ones included (they are listed, marked): callers that act on tickets
    keep only the active ones (`company_scope`)."""
    companies = ClientCompany.objects.for_tenant(membership.tenant)
    if membership.is_co_managed:
        companies = companies.filter(co_managed=True, co_managers=membership)
    return companies














