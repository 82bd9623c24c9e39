from django.apps import AppConfig


class AuditConfig(AppConfig):
    name = "copilot_admin.audit"
    label = "audit"
    verbose_name = "Audit log"

    def ready(self) -> None:
        from copilot_admin.audit import receivers, task_scope  # noqa: F401  (connect the signal receivers)
