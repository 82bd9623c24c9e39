from django.apps import AppConfig


class ComplianceConfig(AppConfig):
    name = "copilot_admin.compliance"
    label = "compliance"
    verbose_name = "Compliance"
