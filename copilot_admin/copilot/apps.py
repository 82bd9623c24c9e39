from django.apps import AppConfig


class CopilotConfig(AppConfig):
    name = "copilot_admin.copilot"
    label = "copilot"
