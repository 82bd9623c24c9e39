"""Identity: how people and systems prove who they are (SSO with OpenID Connect, MFA, integration keys)."""

from django.apps import AppConfig


class IdentityConfig(AppConfig):
    name = "copilot_admin.identity"
    label = "identity"

    def ready(self) -> None:
        from copilot_admin.identity import mfa  # noqa: F401  (connects the second-factor receiver)

        # DRF loads the authentication class early (its settings); what it hands to the resolver,
        # and the schema extension, need the rooms below, loaded by now.
        from copilot_admin.identity import schema  # noqa: F401  (registers the OpenAPI security scheme)
        from copilot_admin.identity.authentication import IntegrationKeyAuthentication
        from copilot_admin.identity.delegation import IntegrationKeyCredential

        IntegrationKeyAuthentication.credential_class = IntegrationKeyCredential
