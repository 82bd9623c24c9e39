"""The identity room's item of the tenant's setup checklist (access/setup_checks.py): MFA for
administrators and auditors. Replaces the directory's placeholder of the same key."""

from copilot_admin.access.setup_checks import SetupItem, setup_check_register
from copilot_admin.identity.mfa import mfa_tenant_required
from tenants.models import Tenant


def _mfa(tenant: Tenant) -> SetupItem:
    required = mfa_tenant_required(tenant=tenant)
    return SetupItem(
        key="mfa", label="Second factor (MFA) for administrators", done=required,
        detail="Required for members holding admin or audit permissions." if required else "Not required yet.",
        url_name="copilot:settings",
    )


def register() -> None:
    setup_check_register(key="mfa", order=30, check=_mfa)
