"""The one policy function: may this actor use this permission?

Every base class, service and page asks here; nothing branches on role names. A tenant
permission (a `Perm`, or `ANY_MEMBER`) is held by a membership; a platform permission
(`PlatformPerm`) by a user. Services call `permission_require` first, so a task, command or
new adapter that calls them cannot skip the check the base classes make early.
"""

from copilot_admin.access.permissions import ANY_MEMBER, PlatformPerm, copilot_grants
from copilot_admin.audit.selectors import is_platform_auditor
from copilot_admin.core.errors import NotFound, PermissionRefused
from tenants.models import Membership, User


def permissions_of(membership: Membership | None) -> frozenset[str]:
    """The permission codes a membership holds now: none when it, its user or its role is inactive.

    The co-managed ceiling is applied here again, so a role that somehow holds an admin
    permission never grants it to a co-managed user.
    """
    if not isinstance(membership, Membership) or not membership.is_active or not membership.user.is_active:
        return frozenset()
    role = membership.role
    if not role.is_active or role.user_type != membership.user_type:
        return frozenset()
    granted = role.permission_set
    if membership.is_co_managed:
        granted = granted & copilot_grants()
    return frozenset(granted)


def has_permission(actor: Membership | User | None, permission) -> bool:
    """True when `actor` holds `permission`.

    - `PlatformPerm.OPERATOR`: an active user who is a platform operator;
      `PlatformPerm.AUDITOR`: an active platform operator or granted platform auditor.
    - `ANY_MEMBER`: any active membership (its user active too).
    - a `Perm` code: an active membership whose role grants it (`permissions_of`).
    A membership never holds a platform permission, a user never a tenant permission.
    """
    if permission in (PlatformPerm.OPERATOR, PlatformPerm.AUDITOR):
        if not isinstance(actor, User) or not actor.is_authenticated or not actor.is_active:
            return False
        if permission == PlatformPerm.OPERATOR:
            return actor.is_platform_operator
        return is_platform_auditor(actor)
    if not isinstance(actor, Membership) or not actor.is_active or not actor.user.is_active:
        return False
    if permission is ANY_MEMBER:
        return True
    return permission in permissions_of(actor)


def permission_require(
    *, actor: Membership | User | None, permission, tenant=None, message: str | None = None
) -> None:
    """What a service calls before any work: refuse (`PermissionRefused`, 403) unless `actor`
    holds `permission` (a tuple: any one of them).

    `tenant` (a tenant or its id) is the tenant whose object the service touches: a membership
    of another tenant is answered `NotFound`, as a foreign object is everywhere.
    """
    if tenant is not None and isinstance(actor, Membership) and actor.tenant_id != getattr(tenant, "pk", tenant):
        raise NotFound("Not found.")
    alternatives = permission if isinstance(permission, tuple) else (permission,)
    if not any(has_permission(actor, one) for one in alternatives):
        raise PermissionRefused(message or "Your security role does not allow this action.")
