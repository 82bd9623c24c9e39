"""The usage room's item of the setup checklist (access/setup_checks.py): the tenant's limits."""

from copilot_admin.access.setup_checks import SetupItem, setup_check_register
from copilot_admin.usage.models import TenantLimitPolicy
from tenants.models import Tenant


def _limits(tenant: Tenant) -> SetupItem:
    own = TenantLimitPolicy.objects.for_tenant(tenant).exists()
    return SetupItem(
        key="limits", label="Usage limits", done=own,
        detail="The tenant's own limits apply." if own else "The platform's default limits apply until you set yours.",
        url_name="usage:limits",
    )


def register() -> None:
    setup_check_register(key="limits", order=60, check=_limits)
