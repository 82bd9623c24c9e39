"""Writes to security roles. Each takes the acting membership and enforces the role rules:

- a role applies to one user type; a co-managed role never holds an admin permission;
- nobody grants a permission they do not hold themselves;
- system roles are read-only: they can only be cloned or deactivated;
- nobody changes (renames, strips, re-activates, deactivates, deletes) a role that holds a
  permission they do not hold themselves;
- role names are unique per tenant, also under concurrent writes (`duplicate`, never a 500).

Each write first checks that the actor manages roles (`admin.roles`) in the role's tenant, and
records itself in the tenant's audit log, with its actor, in its transaction.
"""

from django.db import transaction

from copilot_admin.access.models import SecurityRole
from copilot_admin.access.permissions import Perm, PlatformPerm, all_permissions, copilot_grants
from copilot_admin.access.policy import permission_require, permissions_of
from copilot_admin.audit.services import audit_change_record, audit_snapshot
from copilot_admin.core.errors import ApplicationError, Conflict, PermissionRefused, refusing_duplicates
from tenants.models import Membership, Tenant, User, UserType


def system_roles() -> tuple[dict, ...]:
    """The roles every tenant starts with (read-only, clonable); the copilot grants are every
    feature's in the catalogue."""
    return (
        {
            "name": "Tenant Administrator",
            "description": "Manages users, roles, companies, copilot settings and limits; uses every feature.",
            "user_type": UserType.INTERNAL,
            "permissions": sorted(all_permissions()),
        },
        {
            "name": "Technician",
            "description": "Uses the copilot features on tickets.",
            "user_type": UserType.INTERNAL,
            "permissions": sorted(copilot_grants()),
        },
        {
            "name": "Co-managed Help Desk",
            "description": "A customer's IT staff: uses the copilot on the companies it co-manages.",
            "user_type": UserType.CO_MANAGED,
            "permissions": sorted(copilot_grants()),
        },
        {
            "name": "Compliance Auditor",
            "description": "Reads the audit log, usage, users, roles and companies, exports the audit log; "
                           "changes nothing.",
            "user_type": UserType.INTERNAL,
            "permissions": sorted({Perm.USAGE_VIEW, Perm.AUDIT_VIEW, Perm.AUDIT_EXPORT, Perm.DIRECTORY_VIEW}),
        },
    )


def _clean_permissions(*, permissions, user_type: str) -> list[str]:
    unknown = sorted(set(permissions) - all_permissions())
    if unknown:
        raise ApplicationError(f"Unknown permission(s): {', '.join(unknown)}.", fields={"permissions": unknown})
    if user_type == UserType.CO_MANAGED:
        above_ceiling = sorted(set(permissions) - copilot_grants())
        if above_ceiling:
            raise ApplicationError(
                "A co-managed role can only hold copilot feature grants, not admin permissions.",
                code="co_managed_ceiling",
                fields={"permissions": above_ceiling},
            )
    return sorted(set(permissions))


def ensure_can_grant(*, actor: Membership, permissions) -> None:
    """Refuse when `permissions` holds a code the actor does not hold itself (no escalation)."""
    missing = sorted(set(permissions) - permissions_of(actor))
    if missing:
        raise PermissionRefused(
            f"You cannot grant permissions you do not hold: {', '.join(missing)}.",
            code="escalation_refused",
        )


def _ensure_editable(role: SecurityRole) -> None:
    if role.is_system:
        raise Conflict("System roles are read-only; clone the role to change it.", code="system_role_read_only")


ROLE_NAME_CONSTRAINT = "role_unique_name_per_tenant"


def _name_taken(name: str) -> ApplicationError:
    return ApplicationError(f"A role named {name!r} already exists.", code="duplicate", fields={"name": ["taken"]})


def _ensure_unique_name(*, tenant: Tenant, name: str, exclude_pk=None) -> None:
    taken = SecurityRole.objects.for_tenant(tenant).filter(name__iexact=name)
    if exclude_pk is not None:
        taken = taken.exclude(pk=exclude_pk)
    if taken.exists():
        raise _name_taken(name)


@transaction.atomic
def roles_seed_system(*, actor: User | None, tenant: Tenant) -> list[SecurityRole]:
    """Create (or bring up to date) the tenant's system roles, recorded with `actor` (the
    operator creating the tenant; None: the system, as the seed and migrations run it).
    Idempotent: a role already up to date is neither written nor recorded."""
    if actor is not None:
        permission_require(actor=actor, permission=PlatformPerm.OPERATOR,
                           message="Only platform operators seed a tenant's system roles.")
    roles = []
    for spec in system_roles():
        values = {key: spec[key] for key in ("description", "user_type", "permissions")}
        role = SecurityRole.objects.for_tenant(tenant).select_for_update().filter(name=spec["name"]).first()
        if role is None:
            role = SecurityRole.objects.for_tenant(tenant).create(tenant=tenant, name=spec["name"], is_system=True, **values)
            audit_change_record(actor=actor, tenant=tenant, instance=role)
        else:
            before = audit_snapshot(role)
            for key, value in {**values, "is_system": True}.items():
                setattr(role, key, value)
            if audit_change_record(actor=actor, tenant=tenant, instance=role, before=before) is not None:
                role.save()
        roles.append(role)
    return roles


@transaction.atomic
def role_create(
    *, actor: Membership, name: str, user_type: str, permissions, description: str = "", is_active: bool = True
) -> SecurityRole:
    permission_require(actor=actor, permission=Perm.ROLES)
    return _role_insert(actor=actor, name=name, user_type=user_type, permissions=permissions,
                        description=description, is_active=is_active)


def _role_insert(
    *, actor: Membership, name, user_type, permissions, description, is_active, source=None
) -> SecurityRole:
    permissions = _clean_permissions(permissions=permissions, user_type=user_type)
    ensure_can_grant(actor=actor, permissions=permissions)
    _ensure_unique_name(tenant=actor.tenant, name=name)
    with refusing_duplicates(constraint=ROLE_NAME_CONSTRAINT, error=_name_taken(name)):
        role = SecurityRole.objects.for_tenant(actor.tenant).create(
            tenant=actor.tenant, name=name, user_type=user_type, permissions=permissions, description=description,
            is_active=bool(is_active),
        )
    if source is None:
        audit_change_record(actor=actor, tenant=actor.tenant, instance=role)
    else:
        # The entry names the role it was cloned from (its name then, and its id).
        audit_change_record(actor=actor, tenant=actor.tenant, instance=role, action="role.clone",
                            metadata={"cloned_from": source.name, "cloned_from_id": source.pk})
    return role


@transaction.atomic
def role_clone(
    *, actor: Membership, source: SecurityRole, name: str, permissions=None, description=None, is_active: bool = True
) -> SecurityRole:
    """A new, editable role starting from `source` (system roles included); its entry
    (`role.clone`) names the source."""
    permission_require(actor=actor, permission=Perm.ROLES, tenant=source.tenant_id)
    return _role_insert(
        actor=actor,
        name=name,
        user_type=source.user_type,
        permissions=source.permissions if permissions is None else permissions,
        description=source.description if description is None else description,
        is_active=is_active,
        source=source,
    )


@transaction.atomic
def role_update(*, actor: Membership, role: SecurityRole, **changes) -> SecurityRole:
    """Change name, description, permissions or is_active. User type is fixed once users hold the role.

    Whoever changes a role must hold every permission it holds: renaming, stripping or
    re-activating a role above oneself would hand its permissions back to its holders."""
    permission_require(actor=actor, permission=Perm.ROLES, tenant=role.tenant_id)
    role = SecurityRole.objects.for_tenant(actor.tenant).select_for_update().get(pk=role.pk)
    before = audit_snapshot(role)
    only_deactivation = set(changes) <= {"is_active"}
    if not only_deactivation:
        _ensure_editable(role)
    ensure_can_grant(actor=actor, permissions=role.permission_set)
    if "user_type" in changes and changes["user_type"] != role.user_type:
        if role.memberships.exists():
            raise Conflict("The user type of a role held by users cannot change.", code="role_in_use")
        role.user_type = changes["user_type"]
    if "permissions" in changes or "user_type" in changes:
        new = _clean_permissions(permissions=changes.get("permissions", role.permissions), user_type=role.user_type)
        # What the role held is the actor's (checked above); what is added must be too.
        ensure_can_grant(actor=actor, permissions=set(new) - role.permission_set)
        role.permissions = new
    if "name" in changes and changes["name"] != role.name:
        _ensure_unique_name(tenant=actor.tenant, name=changes["name"], exclude_pk=role.pk)
        role.name = changes["name"]
    if "description" in changes:
        role.description = changes["description"]
    if "is_active" in changes:
        if not changes["is_active"] and role.is_active:
            if actor.role_id == role.pk:
                raise Conflict("You cannot deactivate the role you hold yourself.", code="own_role")
            role_ensure_removable(role=role)
        role.is_active = changes["is_active"]
    with refusing_duplicates(constraint=ROLE_NAME_CONSTRAINT, error=_name_taken(role.name)):
        role.save()
    audit_change_record(actor=actor, tenant=actor.tenant, instance=role, before=before)
    return role


def role_holders_sentence(count: int) -> str:
    return f"{count} user{' holds' if count == 1 else 's hold'} this role"


def role_removal_blockers(*, role: SecurityRole) -> list[str]:
    """Why the role cannot be deactivated or deleted now (empty: it can). Users holding it
    (invited ones too) would lose their access silently: they are moved first. A system role
    stays while it is the only active role for its user type (clone it instead)."""
    blockers = []
    holders = role.memberships.count()
    if holders:
        blockers.append(f"{role_holders_sentence(holders)}; move them to another role first.")
    if role.is_system:
        others = SecurityRole.objects.for_tenant(role.tenant).filter(
            user_type=role.user_type, is_active=True).exclude(pk=role.pk)
        if not others.exists():
            blockers.append(
                f"It is the only active role for {role.get_user_type_display().lower()} users; "
                "clone it instead and change the copy."
            )
    return blockers


def role_ensure_removable(*, role: SecurityRole) -> None:
    blockers = role_removal_blockers(role=role)
    if blockers:
        raise Conflict(" ".join(blockers), code="role_in_use")


@transaction.atomic
def role_delete(*, actor: Membership, role: SecurityRole) -> None:
    permission_require(actor=actor, permission=Perm.ROLES, tenant=role.tenant_id)
    _ensure_editable(role)
    ensure_can_grant(actor=actor, permissions=role.permission_set)
    role_ensure_removable(role=role)
    audit_change_record(actor=actor, tenant=actor.tenant, instance=role, deleted=True)
    role.delete()
