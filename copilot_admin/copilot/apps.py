from django.apps import AppConfig


class CopilotConfig(AppConfig):
    name = "copilot_admin.copilot"
    label = "copilot"

    def ready(self):
        # Declares the copilot features; each one's grant joins access's permission catalogue.
        from copilot_admin.copilot import features, setup_checks  # noqa: F401

        setup_checks.register()
