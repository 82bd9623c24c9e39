"""Identity: how people and systems prove who they are (SSO with OpenID Connect, MFA, integration keys)."""
from django.apps import AppConfig


class IdentityConfig(AppConfig):
    name = "copilot_admin.identity"
    label = "identity"

    def ready(self) -> None:
        from copilot_admin.core.login_policy import password_login_check_register
        from copilot_admin.identity import mfa  # noqa: F401  (connects the second-factor receiver)
        from copilot_admin.identity.sso_services import sso_password_login_check

        # Password login (page and API) for a domain with enforced single sign-on: 403 sso_required.
        password_login_check_register(sso_password_login_check)
        # DRF loads the authentication class early (its settings); what it hands to the resolver,
        # and the schema extension, need the rooms below, loaded by now.
        from copilot_admin.identity import schema  # noqa: F401  (registers the OpenAPI security scheme)
        from copilot_admin.identity.authentication import IntegrationKeyAuthentication
        from copilot_admin.identity.delegation import IntegrationKeyCredential

        IntegrationKeyAuthentication.credential_class = IntegrationKeyCredential

        # A key's cached row (selectors.integration_key_by_secret) is stale once the key is saved
        # (revoked, rotated) or deleted: the next call reads it again.
        from copilot_admin.core.versioned_cache import bump_on_change
        from copilot_admin.identity.models import IntegrationKey
        from copilot_admin.identity.selectors import integration_key_scope
        from tenants.versioning import tenant_owned_scopes

        bump_on_change(IntegrationKey, lambda key: (*tenant_owned_scopes(key), integration_key_scope(key.key_id)))

        # The MFA item of the tenant's setup checklist (access/setup_checks.py).
        from copilot_admin.identity import setup_checks

        setup_checks.register()
