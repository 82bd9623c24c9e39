"""The shape of an integration key's secret and its stored form.

A secret is `cak_` and 64 hex digits (knox's token generator); API tokens are bare hex, so the
authentication classes tell the two apart by the head. It is stored as knox's token hash
(SHA-512 by default), as API tokens are; its first 16 characters (`key_id`) are public.
"""

from knox.crypto import create_token_string, hash_token

KEY_PREFIX = "cak_"
KEY_ID_LENGTH = len(KEY_PREFIX) + 12


def key_secret_new() -> str:
    return KEY_PREFIX + create_token_string()


def key_digest(secret: str) -> str:
    return hash_token(secret)


def key_id_of(secret: str) -> str:
    return secret[:KEY_ID_LENGTH]


def looks_like_key(secret: str) -> bool:
    """An integration key's shape (not its validity): the head, then hex digits only."""
    body = secret[len(KEY_PREFIX):]
    return secret.startswith(KEY_PREFIX) and 0 < len(body) <= 128 and all(c in "0123456789abcdef" for c in body)
