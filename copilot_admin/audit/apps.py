from django.apps import AppConfig


class AuditConfig(AppConfig):
    name = "copilot_admin.audit"
    label = "audit"
