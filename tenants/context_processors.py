"""Template context for the layout: the tenant switcher and the current tenant's permissions."""

from tenants.selectors import memberships_of_user


def tenancy(request) -> dict:
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {}
    return {
        "switchable_memberships": memberships_of_user(user=user),
        "current_tenant": getattr(request, "tenant", None),
        "current_membership": getattr(request, "membership", None),
        "current_permissions": getattr(request, "permissions", frozenset()),
    }
