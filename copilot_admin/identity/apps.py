from django.apps import AppConfig


class IdentityConfig(AppConfig):
    name = "copilot_admin.identity"
    label = "identity"
