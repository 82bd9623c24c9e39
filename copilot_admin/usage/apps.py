from django.apps import AppConfig


class UsageConfig(AppConfig):
    name = "copilot_admin.usage"
    label = "usage"

    def ready(self) -> None:
        from copilot_admin.core.versioned_cache import GLOBAL, bump_on_change
        from copilot_admin.usage.models import CopilotAccess, PlatformLimitPolicy, TenantLimitPolicy
        from tenants.versioning import tenant_owned_scopes

        # What a copilot call reads through the versioned cache (core/versioned_cache.py).
        bump_on_change(CopilotAccess, tenant_owned_scopes)
        bump_on_change(TenantLimitPolicy, tenant_owned_scopes)
        bump_on_change(PlatformLimitPolicy, lambda policy: (GLOBAL,))
