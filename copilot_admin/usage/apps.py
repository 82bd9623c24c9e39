from django.apps import AppConfig


class UsageConfig(AppConfig):
    name = "copilot_admin.usage"
    label = "usage"
