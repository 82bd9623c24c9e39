"""Reads of tenancy. Lookups by id take the acting membership and answer missing and
foreign alike (NotFound)."""

from django.db.models import QuerySet

from copilot_admin.access.errors import NotFound
from tenants.models import ClientCompany, Membership, Tenant, User


def membership_resolve(*, user: User, tenant_slug: str) -> Membership:
    """The user's active membership in the tenant; NotFound when the tenant is missing or the
    user is not an active member (a stranger cannot learn that a tenant exists)."""
    if not user.is_authenticated or not user.is_active:
        raise NotFound("Not found.")
    tenant = Tenant.objects.filter(slug=tenant_slug).first()
    if tenant is None:
        raise NotFound("Not found.")
    membership = (
        Membership.objects.for_tenant(tenant)
        .select_related("role", "user", "tenant", "tenant__zone")
        .filter(user=user, is_active=True)
        .first()
    )
    if membership is None:
        raise NotFound("Not found.")
    return membership


def memberships_of_user(*, user: User) -> QuerySet[Membership]:
    """The tenants a user may switch to: its active memberships of active tenants."""
    # unscoped(): this lists one user's own memberships across tenants (the tenant switcher).
    return (
        Membership.objects.unscoped()
        .filter(user=user, is_active=True)
        .select_related("tenant")
        .order_by("tenant__name")
    )


def companies_in_scope(*, membership: Membership) -> QuerySet[ClientCompany]:
    """All companies for internal users; for a co-managed user only the co-managed companies it is bound to."""
    companies = ClientCompany.objects.for_tenant(membership.tenant)
    if membership.is_co_managed:
        companies = companies.filter(co_managed=True, co_managers=membership)
    return companies
