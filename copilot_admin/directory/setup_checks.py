"""The directory's items of the setup checklist (access/setup_checks.py): the first
administrator, single sign-on and MFA (until the identity room registers its own), security
roles and client companies."""

from copilot_admin.access.models import SecurityRole
from copilot_admin.access.permissions import all_permissions
from copilot_admin.access.setup_checks import SetupItem, setup_check_register
from tenants.models import ClientCompany, Membership, Tenant


def _administrator(tenant: Tenant) -> SetupItem:
    admins = [
        m for m in Membership.objects.for_tenant(tenant).filter(is_active=True).select_related("role")
        if m.role.permission_set >= all_permissions()
    ]
    accepted = [m for m in admins if m.is_accepted]
    if accepted:
        detail = f"{len(accepted)} administrator{'s' if len(accepted) != 1 else ''} signed in."
    elif admins:
        detail = "The administrator's invitation is waiting to be accepted."
    else:
        detail = "Nobody is invited as administrator yet."
    return SetupItem(key="administrator", label="First administrator", done=bool(accepted), detail=detail,
                     url_name="directory:users")


def _sso(tenant: Tenant) -> SetupItem:
    enabled = bool(getattr(getattr(tenant, "sso_configuration", None), "enabled", False))
    return SetupItem(
        key="sso", label="Single sign-on (Entra ID)", done=enabled,
        detail="Sign-in with Microsoft is on." if enabled else "Members sign in with a password.",
    )


def _mfa(tenant: Tenant) -> SetupItem:
    # A placeholder: the identity room registers the real check under the same key.
    return SetupItem(key="mfa", label="Second factor (MFA) for administrators", done=False, detail="Not required yet.")


def _roles(tenant: Tenant) -> SetupItem:
    own = SecurityRole.objects.for_tenant(tenant).filter(is_system=False, is_active=True).count()
    return SetupItem(
        key="roles", label="Security roles", done=own > 0,
        detail=f"{own} role{'s' if own != 1 else ''} of your own besides the system roles." if own
        else "Only the system roles; clone one to grant exactly the features your people need.",
        url_name="access:roles",
    )


def _companies(tenant: Tenant) -> SetupItem:
    count = ClientCompany.objects.for_tenant(tenant).count()
    return SetupItem(
        key="companies", label="Client companies", done=count > 0,
        detail=f"{count} client compan{'ies' if count != 1 else 'y'}." if count else "No client company yet.",
        url_name="directory:companies",
    )


def register() -> None:
    setup_check_register(key="administrator", order=10, check=_administrator)
    setup_check_register(key="sso", order=20, check=_sso)
    setup_check_register(key="mfa", order=30, check=_mfa)
    setup_check_register(key="roles", order=40, check=_roles)
    setup_check_register(key="companies", order=50, check=_companies)
