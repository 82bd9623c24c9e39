from django.apps import AppConfig


class UsageConfig(AppConfig):
    name = "copilot_admin.usage"
    label = "usage"

    def ready(self) -> None:
        from copilot_admin.usage import audit_registry  # noqa: F401  (registers models with django-auditlog)
