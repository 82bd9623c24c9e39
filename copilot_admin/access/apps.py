from django.apps import AppConfig


class AccessConfig(AppConfig):
    name = "copilot_admin.access"
    label = "access"

    def ready(self):
        from copilot_admin.access import login_guard  # noqa: F401  (connects the failed-login counter)
