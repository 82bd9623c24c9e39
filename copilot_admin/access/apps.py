from django.apps import AppConfig


class AccessConfig(AppConfig):
    name = "copilot_admin.access"
    label = "access"

    def ready(self) -> None:
        from copilot_admin.access import tokens
        from copilot_admin.access.models import SecurityRole
        from copilot_admin.core.versioned_cache import bump_on_change
        from tenants.versioning import tenant_owned_scopes

        tokens.register()
        bump_on_change(SecurityRole, tenant_owned_scopes)
