from django.apps import AppConfig


class RegionsConfig(AppConfig):
    name = "copilot_admin.regions"
    label = "regions"

    def ready(self) -> None:
        from copilot_admin.core.versioned_cache import GLOBAL, bump_on_change
        from copilot_admin.regions.models import AzureDeployment, DataZone

        # A zone's deployments are read through the versioned cache (core/versioned_cache.py).
        # Health is written with QuerySet.update, which bumps nothing: routing does not read it.
        bump_on_change(AzureDeployment, lambda deployment: (GLOBAL,))
        bump_on_change(DataZone, lambda zone: (GLOBAL,))
