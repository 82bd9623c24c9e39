from django.apps import AppConfig


class AccessConfig(AppConfig):
    name = "copilot_admin.access"
    label = "access"
