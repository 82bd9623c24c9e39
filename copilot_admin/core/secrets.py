"""Secrets come only from the environment, and only from variables named for the purpose.

A configuration row (a deployment) names the variable that holds its key; the name must carry
the purpose's prefix, so a row can never make the server read (and send away) another secret
such as the Django secret key or the database URL."""

import re

# The only environment variables an API key is ever read from. Any other name (the secret
# key, the database URL, ...) is refused, so a deployment cannot send another secret to the
# endpoint it names.
API_KEY_ENV_PREFIX = "AZURE_OPENAI_KEY_"


_API_KEY_ENV = re.compile(r"AZURE_OPENAI_KEY_[A-Z0-9_]+")


def api_key_env_allowed(name: str) -> bool:
    """Whether `name` may hold an Azure OpenAI API key: `AZURE_OPENAI_KEY_` then A-Z, 0-9 or _."""
    return isinstance(name, str) and len(name) <= 128 and _API_KEY_ENV.fullmatch(name) is not None




# The only environment variables an OpenID Connect client secret is ever read from (a tenant's
# single sign-on names one): like the API keys, a tenant can never make the server send another
# secret to the identity provider it names.
OIDC_CLIENT_SECRET_ENV_PREFIX = "OIDC_CLIENT_SECRET_"

_OIDC_CLIENT_SECRET_ENV = re.compile(r"OIDC_CLIENT_SECRET_[A-Z0-9_]+")


def oidc_client_secret_env_allowed(name: str) -> bool:
    """Whether `name` may hold an OpenID Connect client secret: `OIDC_CLIENT_SECRET_` then A-Z, 0-9 or _."""
    return isinstance(name, str) and len(name) <= 128 and _OIDC_CLIENT_SECRET_ENV.fullmatch(name) is not None
