from django.apps import AppConfig


class RegionsConfig(AppConfig):
    name = "copilot_admin.regions"
    label = "regions"

    def ready(self) -> None:
        from auditlog.registry import auditlog

        from copilot_admin.regions.models import AzureDeployment

        # Configuration changes are audited; the health fields change with every call and are not.
        auditlog.register(AzureDeployment, exclude_fields=list(AzureDeployment.HEALTH_FIELDS))
