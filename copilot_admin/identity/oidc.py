"""The OpenID Connect relying party: the authorization code flow with PKCE against one tenant's
identity provider (Microsoft Entra ID first; any OpenID Certified provider).

Built on Authlib (`OAuth2Session`: the authorization URL with an S256 code challenge, the code
exchange with client_secret_basic) and joserfc (Authlib's JOSE library: the provider's JWKS, the
ID token's signature and registered claims). Nothing here knows tenants or users: it takes the
issuer, client and the values the flow kept (state, nonce, code verifier) and answers the ID
token's verified claims or raises `OidcError`.

What an ID token must carry to be accepted (`oidc_id_token_validate`):
- a signature by a key of the issuer's published JWKS (RS256/PS256/ES256; never `none` or HMAC);
- `iss` equal to the issuer of the discovery document, which must equal the configured issuer;
- `aud` naming our client id (and `azp` equal to it when there are several audiences);
- `exp` in the future and `iat` not in the future (60 s leeway for clock skew);
- `nonce` equal to the one this browser's flow generated;
- a verified e-mail address (`oidc_verified_email`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import requests
from authlib.common.security import generate_token
from authlib.integrations.requests_client import OAuth2Session
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

HTTP_TIMEOUT_SECONDS = 10
CLOCK_LEEWAY_SECONDS = 60
SIGNING_ALGORITHMS = ("RS256", "PS256", "ES256")
SCOPE = "openid email profile"
# Entra ID's issuers: e-mail claims there follow Entra's rules (see oidc_verified_email).
ENTRA_ISSUER_HOSTS = ("login.microsoftonline.com", "login.microsoftonline.us", "login.partner.microsoftonline.cn")


class OidcError(Exception):
    """The provider or its answer failed a check; `reason` is a stable code for the audit log."""

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason
        self.message = message


def _now() -> float:
    """The relying party's clock (seconds); tests move it to show an expired token refused."""
    return time.time()


@dataclass(frozen=True)
class ProviderMetadata:
    issuer: str
    authorization_endpoint: str
    token_endpoint: str
    jwks_uri: str


def _get_json(url: str, what: str) -> dict:
    try:
        response = requests.get(url, timeout=HTTP_TIMEOUT_SECONDS, allow_redirects=False)
        response.raise_for_status()
        body = response.json()
    except (requests.RequestException, ValueError) as error:
        raise OidcError("provider_unreachable", f"The identity provider's {what} could not be read.") from error
    if not isinstance(body, dict):
        raise OidcError("provider_invalid", f"The identity provider's {what} is not a JSON object.")
    return body


def oidc_discover(issuer: str) -> ProviderMetadata:
    """The provider's metadata from `<issuer>/.well-known/openid-configuration`; its `issuer`
    must be the configured one (OpenID Connect Discovery 1.0, section 4.3): a document that names
    another issuer is refused, so tokens are only ever checked against the issuer configured."""
    document = _get_json(issuer.rstrip("/") + "/.well-known/openid-configuration", "discovery document")
    announced = document.get("issuer")
    if not isinstance(announced, str) or announced.rstrip("/") != issuer.rstrip("/"):
        raise OidcError("wrong_issuer", "The identity provider announces a different issuer than the one configured.")
    try:
        return ProviderMetadata(
            issuer=announced,
            authorization_endpoint=str(document["authorization_endpoint"]),
            token_endpoint=str(document["token_endpoint"]),
            jwks_uri=str(document["jwks_uri"]),
        )
    except KeyError as error:
        raise OidcError("provider_invalid", f"The discovery document lacks {error.args[0]}.") from error


@dataclass(frozen=True)
class AuthorizationRequest:
    """Where to send the browser, and what the flow must keep (server side) until the callback."""

    url: str
    state: str
    nonce: str
    code_verifier: str


def oidc_authorization_request(
    metadata: ProviderMetadata, *, client_id: str, redirect_uri: str, login_hint: str = ""
) -> AuthorizationRequest:
    """A new authorization request: fresh state, nonce and PKCE code verifier (S256 challenge)."""
    state, nonce, code_verifier = generate_token(40), generate_token(40), generate_token(64)
    session = OAuth2Session(client_id, scope=SCOPE, redirect_uri=redirect_uri, code_challenge_method="S256")
    extra = {"login_hint": login_hint} if login_hint else {}
    url, _ = session.create_authorization_url(
        metadata.authorization_endpoint, state=state, code_verifier=code_verifier, nonce=nonce, **extra
    )
    return AuthorizationRequest(url=url, state=state, nonce=nonce, code_verifier=code_verifier)


def oidc_code_exchange(
    metadata: ProviderMetadata, *, client_id: str, client_secret: str, redirect_uri: str, code: str, code_verifier: str
) -> str:
    """Exchange the authorization code (with the PKCE verifier) for tokens; answers the ID token."""
    session = OAuth2Session(
        client_id, client_secret, redirect_uri=redirect_uri, token_endpoint_auth_method="client_secret_basic"
    )
    try:
        token = session.fetch_token(
            metadata.token_endpoint,
            grant_type="authorization_code",
            code=code,
            code_verifier=code_verifier,
            timeout=HTTP_TIMEOUT_SECONDS,
        )
    except Exception as error:
        raise OidcError("code_exchange_failed", "The identity provider refused the sign-in code.") from error
    id_token = token.get("id_token")
    if not isinstance(id_token, str) or not id_token:
        raise OidcError("no_id_token", "The identity provider answered without an ID token.")
    return id_token


def oidc_jwks(metadata: ProviderMetadata) -> KeySet:
    try:
        return KeySet.import_key_set(_get_json(metadata.jwks_uri, "signing keys"))
    except (JoseError, ValueError, TypeError, KeyError) as error:
        raise OidcError("provider_invalid", "The identity provider's signing keys are unusable.") from error


def oidc_id_token_validate(id_token: str, *, keys: KeySet, issuer: str, client_id: str, nonce: str) -> dict:
    """The ID token's claims once its signature, issuer, audience, expiry and nonce all check out."""
    try:
        token = jwt.decode(id_token, keys, algorithms=list(SIGNING_ALGORITHMS))
    except JoseError as error:
        raise OidcError("bad_signature", "The ID token's signature does not verify.") from error
    claims = token.claims
    checks = {
        "iss": ("wrong_issuer", "The ID token was issued by another issuer."),
        "aud": ("wrong_audience", "The ID token is meant for another client."),
        "exp": ("expired", "The ID token has expired."),
        "iat": ("invalid_token", "The ID token is issued in the future."),
        "nonce": ("wrong_nonce", "The ID token answers another sign-in."),
        "sub": ("invalid_token", "The ID token names no subject."),
    }
    registry = jwt.JWTClaimsRegistry(
        now=lambda: int(_now()),
        leeway=CLOCK_LEEWAY_SECONDS,
        iss={"essential": True, "value": issuer},
        aud={"essential": True, "value": client_id},
        exp={"essential": True},
        iat={"essential": True},
        nonce={"essential": True, "value": nonce},
        sub={"essential": True},
    )
    try:
        registry.validate(claims)
    except JoseError as error:
        claim = (getattr(error, "claim", None) or "").split(",")[0]
        reason, message = checks.get(claim, ("invalid_token", "The ID token is not acceptable."))
        raise OidcError(reason, message) from error
    audiences = claims["aud"] if isinstance(claims["aud"], list) else [claims["aud"]]
    if len(audiences) > 1 and claims.get("azp") != client_id:
        raise OidcError("wrong_audience", "The ID token is meant for another client.")
    return claims


def _is_entra(issuer: str) -> bool:
    host = issuer.split("://", 1)[-1].split("/", 1)[0].lower()
    return host in ENTRA_ISSUER_HOSTS


def oidc_verified_email(claims: dict, *, issuer: str) -> str:
    """The e-mail address the identity provider vouches for, lower-cased; refused when unverified.

    - Standard providers: `email` with `email_verified: true`.
    - Entra ID sends no `email_verified`; it adds the optional claim `xms_edov` (e-mail domain owner
      verified) when the tenant configures it: `email` is accepted with `xms_edov` true. Entra's
      `email` is only present when the user has a mailbox address, and its `preferred_username`
      (the UPN) is mutable and not verified: it is never used to match an account.
    """
    email = claims.get("email")
    if not isinstance(email, str) or "@" not in email:
        raise OidcError("no_email", "The identity provider sent no e-mail address.")
    verified = claims.get("email_verified") is True or claims.get("email_verified") == "true"
    if not verified and _is_entra(issuer):
        verified = claims.get("xms_edov") in (True, 1, "1", "true", "True")
    if not verified:
        raise OidcError("email_unverified", "The identity provider has not verified this e-mail address.")
    return email.strip().lower()
