from django.apps import AppConfig


class CopilotConfig(AppConfig):
    name = "copilot_admin.copilot"
    label = "copilot"

    def ready(self):
        # Declares the copilot features; each one's grant joins access's permission catalogue.
        from copilot_admin.copilot import features  # noqa: F401
