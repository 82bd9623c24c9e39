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


