"""The permission catalogue: code, not data.

Admin permissions per module (`Perm`), and one grant per copilot feature. The grants are not
listed here: each copilot feature is declared once (`copilot/features.py`), and declaring it
adds its grant to this catalogue (`feature_grant_register`), so access knows every feature's
grant, label and URL name without importing the copilot. The copilot app declares its
features while the apps load, so the catalogue is complete before any request, task or
command runs; read it through the functions below when you need it, never copy it into a
module-level constant (a grant registered later would be missing from the copy).

A security role holds a subset of these codes. Co-managed roles may hold only copilot grants
(the ceiling).
"""

from __future__ import annotations

from dataclasses import dataclass

from django.db import models


class Perm(models.TextChoices):
    USERS = "admin.users", "Manage users"
    ROLES = "admin.roles", "Manage security roles"
    COMPANIES = "admin.companies", "Manage client companies"
    COPILOT_SETTINGS = "admin.copilot_settings", "Manage copilot settings"
    LIMITS = "admin.limits", "Manage usage limits"
    REGION = "admin.region", "View data zone and deployments"
    IDENTITY = "admin.identity", "Manage single sign-on"
    USAGE_VIEW = "usage.view", "View usage"
    AUDIT_VIEW = "audit.view", "View audit log"
    AUDIT_EXPORT = "audit.export", "Export audit log"
    INTEGRATIONS = "admin.integrations", "Manage integration keys"
    DIRECTORY_VIEW = "directory.view", "View users, roles and companies (read-only)"


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

ADMIN_PERMISSIONS = frozenset(Perm)


@dataclass(frozen=True)
class FeatureGrant:
    """The grant a security role needs to use one copilot feature.

    `feature` is the feature's name in URLs and tenant switches (`time-entry`), `label` the
    feature's own name (`Draft time entry`), `grant_label` the permission's name in the role
    editor (`Draft time entries`); `code` follows from the feature (`copilot.time_entry`).
    """

    feature: str
    label: str
    grant_label: str

    @property
    def code(self) -> str:
        return grant_code(self.feature)


def grant_code(feature: str) -> str:
    """The code of a copilot feature's grant: `time-entry` -> `copilot.time_entry`."""
    return "copilot." + feature.replace("-", "_")


_FEATURE_GRANTS: dict[str, FeatureGrant] = {}


def feature_grant_register(*, feature: str, label: str, grant_label: str) -> str:
    """Add a copilot feature's grant to the catalogue, after the ones declared before it;
    returns its code. A second feature of the same name, or one whose code is taken, is a
    `ValueError`."""
    grant = FeatureGrant(feature=feature, label=label, grant_label=grant_label)
    if feature in _FEATURE_GRANTS or grant.code in all_permissions():
        raise ValueError(f"The copilot feature {feature!r} (grant {grant.code!r}) is declared already.")
    _FEATURE_GRANTS[feature] = grant
    # The audit log's pages name the feature by its label where a change holds its slug.
    from copilot_admin.audit.readable import value_label_register

    value_label_register(feature, label)
    return grant.code


def feature_grant_unregister(feature: str) -> None:
    """Take a feature's grant out of the catalogue (a feature declared for a test)."""
    from copilot_admin.audit.readable import value_label_unregister

    _FEATURE_GRANTS.pop(feature, None)
    value_label_unregister(feature)


def feature_grants() -> tuple[FeatureGrant, ...]:
    """The copilot features' grants, in the order the features were declared."""
    return tuple(_FEATURE_GRANTS.values())


def feature_names() -> tuple[str, ...]:
    """The copilot features as URLs and tenant switches name them (`summarize`, ...)."""
    return tuple(_FEATURE_GRANTS)


def feature_choices() -> list[tuple[str, str]]:
    """(feature, label) pairs, e.g. for a filter by feature."""
    return [(grant.feature, grant.label) for grant in _FEATURE_GRANTS.values()]


def copilot_grants() -> frozenset[str]:
    """The codes of every copilot feature's grant (what a co-managed role may hold)."""
    return frozenset(grant.code for grant in _FEATURE_GRANTS.values())


def all_permissions() -> frozenset[str]:
    return ADMIN_PERMISSIONS | copilot_grants()


def permission_choices() -> list[tuple[str, str]]:
    """(code, label) of every permission: the admin permissions, then the feature grants."""
    return [*Perm.choices, *((grant.code, grant.grant_label) for grant in _FEATURE_GRANTS.values())]


@dataclass(frozen=True)
class Module:
    """A group of permissions shown together in the role editor: (code, label) pairs."""

    name: str
    permissions: tuple[tuple[str, str], ...]


def _module(name: str, *perms: Perm) -> Module:
    return Module(name, tuple((perm.value, perm.label) for perm in perms))


def modules() -> tuple[Module, ...]:
    """The role editor's permission matrix: one module per admin area, then the copilot features."""
    return (
        _module("Users", Perm.USERS),
        _module("Security roles", Perm.ROLES),
        _module("Client companies", Perm.COMPANIES),
        _module("Copilot settings", Perm.COPILOT_SETTINGS),
        _module("Usage limits", Perm.LIMITS),
        _module("Data zone", Perm.REGION),
        _module("Identity", Perm.IDENTITY),
        _module("Usage", Perm.USAGE_VIEW),
        _module("Audit", Perm.AUDIT_VIEW, Perm.AUDIT_EXPORT, Perm.DIRECTORY_VIEW),
        _module("Integrations", Perm.INTEGRATIONS),
        Module("Copilot features", tuple((grant.code, grant.grant_label) for grant in _FEATURE_GRANTS.values())),
    )
