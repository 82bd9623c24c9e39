from django.apps import AppConfig


class AuditConfig(AppConfig):
    name = "copilot_admin.audit"
    label = "audit"

    def ready(self) -> None:
        from copilot_admin.audit import actor  # noqa: F401  (connects the task actor signals)
