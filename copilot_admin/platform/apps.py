from django.apps import AppConfig


class PlatformConfig(AppConfig):
    name = "copilot_admin.platform"
    label = "platform"
