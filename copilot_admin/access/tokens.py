"""API token authentication (django-rest-knox) with the token's row read from the versioned
cache (core/versioned_cache.py), so an API request does not pay two queries to learn who
is asking.

Revocation is not weakened: the cached copy is stamped with its user's version, and deleting
a token (logout, "log out everywhere", ending a user's sessions, the per-user limit), or any
change to the user (deactivation, a new password), bumps it, so the next request reads the
database again and is refused there. An expired token is never answered from the cache.

Once the owner is known, the request's planned reads (core/versioned_cache.py
`planned_reads`: the copilot call's access chain) are read together with the token's row, in
one round trip. The owner (a fact) is also kept in a small per-process memo, so a warm call
of a known token makes that one round trip only.
"""

import binascii
from hmac import compare_digest

from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from drf_spectacular.contrib.knox_auth_token import KnoxTokenScheme
from knox.auth import TokenAuthentication
from knox.crypto import hash_token
from knox.models import get_token_model
from rest_framework import exceptions

from copilot_admin.core.memo import BoundedMemo
from copilot_admin.core.versioned_cache import bump_on_change, cached, cached_fact, planned_reads_fetch, user_scope


class CachedTokenAuthentication(TokenAuthentication):
    """Knox's `TokenAuthentication`; a known, unexpired token is answered from the cache."""

    def authenticate_credentials(self, token: bytes):
        try:
            digest = hash_token(token.decode("utf-8"))
        except (TypeError, binascii.Error, UnicodeDecodeError):
            raise exceptions.AuthenticationFailed(_("Invalid token.")) from None
        user_id = _token_owner(digest)
        if user_id is not None:
            read = (f"token:{digest}", (user_scope(user_id),))
            planned_reads_fetch(user_id, read)
            auth_token = cached(*read, lambda: _token_row(digest))
            fresh = auth_token is not None and (auth_token.expiry is None or auth_token.expiry > timezone.now())
            if fresh and compare_digest(digest, auth_token.digest):
                return self.validate_user(auth_token)
        # Unknown, expired or revoked: knox's own path decides (and deletes expired tokens).
        return super().authenticate_credentials(token)


class CachedTokenScheme(KnoxTokenScheme):
    """The OpenAPI security scheme of knox tokens (`knoxApiToken`, Bearer), for this subclass."""

    target_class = "copilot_admin.access.tokens.CachedTokenAuthentication"


# digest -> owner's id, for tokens seen by this process. A token's owner never changes (and a
# digest is never another token's), so the memo cannot be wrong: a revoked token is refused by
# the version check of its row (`cached`), as with the shared copy. Bounded: emptied when full.
_owners: BoundedMemo[str, int] = BoundedMemo()


def _token_owner(digest: str) -> int | None:
    """The id of the user a token belongs to: a token's owner never changes, so it is cached
    without a version (`cached` then checks the owner's version for the token itself)."""
    owner = _owners.get(digest)
    if owner is None:
        owner = cached_fact(
            f"token-owner:{digest}",
            lambda: get_token_model().objects.filter(digest=digest).values_list("user_id", flat=True).first(),
        )
        if owner is not None:
            _owners.remember(digest, owner)
    return owner


def _token_row(digest: str):
    return get_token_model().objects.select_related("user").filter(digest=digest).first()


def register() -> None:
    bump_on_change(get_token_model(), lambda token: (user_scope(token.user_id),))
