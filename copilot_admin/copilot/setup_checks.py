"""The copilot's item of the setup checklist (access/setup_checks.py): the tenant's switches."""

from copilot_admin.access.setup_checks import SetupItem, setup_check_register
from copilot_admin.copilot.features import features
from tenants.models import Tenant


def _switches(tenant: Tenant) -> SetupItem:
    if not tenant.plan_includes_copilot:
        return SetupItem(
            key="copilot", label="Copilot switches", done=False,
            detail=f"The copilot is not included in the {tenant.get_plan_display()} plan.",
        )
    on = [feature.label for feature in features() if tenant.feature_enabled(feature.slug)]
    done = tenant.copilot_enabled and bool(on)
    if done:
        detail = f"On for: {', '.join(on)}."
    elif tenant.copilot_enabled:
        detail = "The copilot is on, but every feature is switched off."
    else:
        detail = "The copilot is switched off for this tenant."
    return SetupItem(key="copilot", label="Copilot switches", done=done, detail=detail, url_name="copilot:settings")


def register() -> None:
    setup_check_register(key="copilot", order=70, check=_switches)
