"""Identity: how people and systems prove who they are (SSO with OpenID Connect, MFA, integration keys)."""

from django.apps import AppConfig


class IdentityConfig(AppConfig):
    name = "copilot_admin.identity"
    label = "identity"

    def ready(self) -> None:
        from copilot_admin.identity import mfa  # noqa: F401  (connects the second-factor receiver)
