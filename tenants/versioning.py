"""Which writes of the foundation make cached access decisions stale (core/versioned_cache.py).

A tenant's rows (the tenant, its memberships, client companies and co-management) bump the
tenant's scope; a user's account bumps the user's scope (its credentials are cached with it).
Rooms above register their own models the same way, with `tenant_owned_scopes` for theirs.
"""

from collections.abc import Iterable

from copilot_admin.core.versioned_cache import bump_on_change, tenant_scope, user_scope
from tenants.models import ClientCompany, Membership, Tenant, User

# Slugs never change, and ids are never reused: a memo of the ones seen is always right.
_slugs: dict[int, str] = {}


def tenant_slug_of(tenant_id: int | None) -> str | None:
    """The slug of tenant `tenant_id` (None when it does not exist)."""
    if tenant_id is None:
        return None
    if tenant_id not in _slugs:
        slug = Tenant.objects.filter(pk=tenant_id).values_list("slug", flat=True).first()
        if slug is None:
            return None
        _slugs[tenant_id] = slug
    return _slugs[tenant_id]


def tenant_owned_scopes(instance) -> Iterable[str]:
    """The scope of the tenant a `TenantOwned` row belongs to."""
    tenant = instance._state.fields_cache.get("tenant")
    slug = tenant.slug if tenant is not None else tenant_slug_of(instance.tenant_id)
    return (tenant_scope(slug),) if slug else ()


def register() -> None:
    bump_on_change(Tenant, lambda tenant: (tenant_scope(tenant.slug),))
    bump_on_change(User, lambda user: (user_scope(user.pk),))
    bump_on_change(Membership, tenant_owned_scopes, m2m=[Membership.companies.through])
    bump_on_change(ClientCompany, tenant_owned_scopes)
