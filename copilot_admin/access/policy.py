"""The one policy function: may this membership use this permission?

Every view, API class and service asks here; nothing branches on role names.
"""

from copilot_admin.access.permissions import ANY_MEMBER, copilot_grants
from tenants.models import Membership


def permissions_of(membership: Membership | None) -> frozenset[str]:
    """The permission codes a membership holds now: none when it, its user or its role is inactive.

    The co-managed ceiling is applied here again, so a role that somehow holds an admin
    permission never grants it to a co-managed user.
    """
    if membership is None or not membership.is_active or not membership.user.is_active:
        return frozenset()
    role = membership.role
    if not role.is_active or role.user_type != membership.user_type:
        return frozenset()
    granted = role.permission_set
    if membership.is_co_managed:
        granted = granted & copilot_grants()
    return frozenset(granted)


def has_permission(membership: Membership | None, permission) -> bool:
    """True when the membership is active and holds `permission` (ANY_MEMBER: any active member)."""
    if membership is None or not membership.is_active or not membership.user.is_active:
        return False
    if permission is ANY_MEMBER:
        return True
    return permission in permissions_of(membership)
