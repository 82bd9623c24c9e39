"""The permission catalogue: code, not data.

Admin permissions per module, and one grant per copilot feature. A security role holds a
subset of these codes. Co-managed roles may hold only non-admin permissions (the ceiling).
"""

from dataclasses import dataclass

from django.db import models


class Perm(models.TextChoices):
    USERS = "admin.users", "Manage users"
    ROLES = "admin.roles", "Manage security roles"
    COMPANIES = "admin.companies", "Manage client companies"
    COPILOT_SETTINGS = "admin.copilot_settings", "Manage copilot settings"
    LIMITS = "admin.limits", "Manage usage limits"
    REGION = "admin.region", "View data zone and deployments"
    USAGE_VIEW = "usage.view", "View usage"
    AUDIT_VIEW = "audit.view", "View audit log"
    AUDIT_EXPORT = "audit.export", "Export audit log"
    COPILOT_SUMMARIZE = "copilot.summarize", "Summarize tickets"
    COPILOT_TIME_ENTRY = "copilot.time_entry", "Draft time entries"
    COPILOT_PRIORITIZE = "copilot.prioritize", "Suggest priorities"


class PlatformPerm(models.TextChoices):
    """Permissions outside any tenant, held by a user (not a membership): the operator console
    and the audit log across tenants. Not part of any security role."""

    OPERATOR = "platform.operator", "Platform operator"
    AUDITOR = "platform.auditor", "Read every tenant's audit log"


class _AnyMember:
    """Declared by views any active member of the tenant may use (e.g. listing companies in scope)."""

    label = "Any member"

    def __repr__(self) -> str:
        return "ANY_MEMBER"


ANY_MEMBER = _AnyMember()

# The copilot features (as they appear in URLs and tenant switches) and the grant each needs.
FEATURE_GRANTS: dict[str, Perm] = {
    "summarize": Perm.COPILOT_SUMMARIZE,
    "time-entry": Perm.COPILOT_TIME_ENTRY,
    "prioritize": Perm.COPILOT_PRIORITIZE,
}
COPILOT_GRANTS = frozenset(FEATURE_GRANTS.values())
ADMIN_PERMISSIONS = frozenset(set(Perm) - COPILOT_GRANTS)
ALL_PERMISSIONS = frozenset(Perm)


@dataclass(frozen=True)
class Module:
    """A group of permissions shown together in the role editor."""

    name: str
    permissions: tuple[Perm, ...]


MODULES: tuple[Module, ...] = (
    Module("Users", (Perm.USERS,)),
    Module("Security roles", (Perm.ROLES,)),
    Module("Client companies", (Perm.COMPANIES,)),
    Module("Copilot settings", (Perm.COPILOT_SETTINGS,)),
    Module("Usage limits", (Perm.LIMITS,)),
    Module("Data zone", (Perm.REGION,)),
    Module("Usage", (Perm.USAGE_VIEW,)),
    Module("Audit", (Perm.AUDIT_VIEW, Perm.AUDIT_EXPORT)),
    Module("Copilot features", (Perm.COPILOT_SUMMARIZE, Perm.COPILOT_TIME_ENTRY, Perm.COPILOT_PRIORITIZE)),
)


def is_admin_permission(code: str) -> bool:
    return code in ADMIN_PERMISSIONS
