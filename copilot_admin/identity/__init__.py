"""Identity: how people and systems prove who they are (SSO with OpenID Connect, MFA, integration keys)."""
