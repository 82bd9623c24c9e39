"""MFA: second factors (TOTP authenticator apps, WebAuthn security keys), recovery codes, the
tenant's `mfa_required` policy and the second step of a login.

Guarantees:
- A user with a confirmed factor is never logged in by a password alone: the login page keeps
  it pending until `mfa_verify_code` or `mfa_security_key_authenticate_finish` succeeds, and
  `POST auth/token/` needs `otp` (the `password_verified` receiver below).
- A TOTP code is accepted once (django-otp keeps the last accepted time step); a recovery
  code once (marked used in the same transaction that accepts it, under a row lock).
- Recovery codes are stored as SHA-256 hashes of 80 random bits: never in clear, checked by
  an indexed lookup (no slow hash is needed for random codes of that size).
- Every second-factor failure counts against the account (MFA_FAILURE_LIMIT within
  MFA_FAILURE_WINDOW_SECONDS, then 429 `login_throttled` until the window ends, counters in the
  cache) and is audited; every enrolment, removal and recovery-code use is audited. No secret,
  code or key material is ever written to the audit log.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import secrets
import time
from base64 import b32encode

import segno
from django.conf import settings
from django.core.cache import cache
from django.db import transaction
from django.dispatch import receiver
from django.utils import timezone
from django_otp.plugins.otp_totp.models import TOTPDevice
from webauthn import (
    generate_authentication_options,
    generate_registration_options,
    options_to_json,
    verify_authentication_response,
    verify_registration_response,
)
from webauthn.helpers import base64url_to_bytes, bytes_to_base64url
from webauthn.helpers.exceptions import WebAuthnException
from webauthn.helpers.structs import (
    AuthenticatorSelectionCriteria,
    PublicKeyCredentialDescriptor,
    ResidentKeyRequirement,
    UserVerificationRequirement,
)

from copilot_admin.access.permissions import Perm
from copilot_admin.access.policy import permission_require
from copilot_admin.audit.models import Outcome
from copilot_admin.audit.services import audit_change_record, audit_event_record_for_user_tenants, audit_snapshot
from copilot_admin.core.errors import ApplicationError
from copilot_admin.core.second_factor import SecondFactorRefused, password_verified
from copilot_admin.identity.models import MfaRecoveryCode, MfaSecurityKey, MfaTenantPolicy
from tenants.models import Tenant
from tenants.selectors import memberships_of_user

log = logging.getLogger(__name__)

RECOVERY_CODE_COUNT = 10
# Permissions whose holders must enrol when their tenant turns `mfa_required` on.
_GUARDED_PREFIXES = ("admin.", "audit.")


class Factor:
    TOTP = "totp"
    SECURITY_KEY = "security_key"
    RECOVERY_CODE = "recovery_code"


# -- reads ---------------------------------------------------------------------------------------


def mfa_totp_devices(*, user):
    """The user's confirmed authenticator apps."""
    return TOTPDevice.objects.filter(user=user, confirmed=True).order_by("pk")


def mfa_security_keys(*, user):
    return MfaSecurityKey.objects.filter(user=user)


def mfa_recovery_codes_left(*, user) -> int:
    return MfaRecoveryCode.objects.filter(user=user, used_at__isnull=True).count()


def mfa_has_factor(*, user) -> bool:
    """Whether the user has a confirmed second factor (then every login needs it)."""
    return mfa_totp_devices(user=user).exists() or mfa_security_keys(user=user).exists()


def mfa_tenant_required(*, tenant: Tenant) -> bool:
    policy = MfaTenantPolicy.objects.for_tenant(tenant).first()
    return bool(policy and policy.mfa_required)


def mfa_enrolment_required(*, user) -> bool:
    """Whether the user must have a second factor: a platform operator in production, or a member
    holding any admin or audit permission in a tenant with `mfa_required` on."""
    if user.is_platform_operator and settings.PRODUCTION:
        return True
    memberships = memberships_of_user(user=user).select_related("role")
    required_tenants = set(
        MfaTenantPolicy.objects.unscoped()  # unscoped(): this user's own tenants, listed just above
        .filter(tenant_id__in=[m.tenant_id for m in memberships], mfa_required=True)
        .values_list("tenant_id", flat=True)
    )
    return any(
        m.tenant_id in required_tenants and any(p.startswith(_GUARDED_PREFIXES) for p in m.role.permission_set)
        for m in memberships
    )


def mfa_enrolment_missing(*, user) -> bool:
    """Whether the user must enrol before doing anything else."""
    return not mfa_has_factor(user=user) and mfa_enrolment_required(user=user)


# -- the account throttle for second factors ----------------------------------------------------


def _now() -> float:
    """The throttle's clock (seconds); tests move it instead of sleeping."""
    return time.time()


def _throttle_key(user) -> str:
    return f"{settings.LOGIN_THROTTLE_KEY_PREFIX}mfa:{user.pk}"


def mfa_throttle_retry_after(*, user) -> int:
    """0 when a second factor of `user` may be checked now, else the seconds until it may."""
    try:
        state = cache.get(_throttle_key(user))
    except Exception:
        log.warning("MFA throttle: cache unavailable, attempt admitted", exc_info=True)
        return 0
    if not state or state["failures"] < settings.MFA_FAILURE_LIMIT:
        return 0
    return max(0, math.ceil(state["first"] + settings.MFA_FAILURE_WINDOW_SECONDS - _now()))


def _throttle_failure(user) -> None:
    key, now = _throttle_key(user), _now()
    try:
        state = cache.get(key)
        if not state or now >= state["first"] + settings.MFA_FAILURE_WINDOW_SECONDS:
            state = {"first": now, "failures": 0}
        state["failures"] += 1
        cache.set(key, state, timeout=settings.MFA_FAILURE_WINDOW_SECONDS)
    except Exception:
        log.warning("MFA throttle: cache unavailable, failure not counted", exc_info=True)


def _throttle_reset(user) -> None:
    try:
        cache.delete(_throttle_key(user))
    except Exception:
        log.warning("MFA throttle: cache unavailable, reset skipped", exc_info=True)


def mfa_throttle_check(*, user) -> None:
    """Refuse (429 `login_throttled`, `retry_after`) while the account's second factors are throttled."""
    retry_after = mfa_throttle_retry_after(user=user)
    if retry_after:
        raise SecondFactorRefused(
            f"Too many failed second factors for this account; try again in {retry_after} seconds.",
            code="login_throttled",
            status_code=429,
            retry_after=retry_after,
        )


def _failure(user, *, factor: str, request, reason: str) -> SecondFactorRefused:
    """Count and audit one failed second factor; the error to raise."""
    _throttle_failure(user)
    with transaction.atomic():
        _audit(
            user,
            action="identity.mfa_failed",
            request=request,
            outcome=Outcome.FAILURE,
            object_repr=f"Second factor of {user.email}",
            metadata={"factor": factor, "reason": reason},
        )
    return SecondFactorRefused("The second factor is wrong or was used already.", code="invalid_otp")


def _audit(user, *, action: str, request, object_id="", object_repr="", metadata=None, outcome=Outcome.SUCCESS):
    audit_event_record_for_user_tenants(
        user=user,
        actor=user,
        action=action,
        object_type="mfa_factor",
        object_id=str(object_id),
        object_repr=object_repr or f"Second factor of {user.email}",
        request=request,
        outcome=outcome,
        metadata=metadata or {},
    )


# -- the second step of a login ------------------------------------------------------------------


def _normalize(code: str) -> str:
    return "".join(code.split()).replace("-", "").lower()


def _recovery_hash(code: str) -> str:
    return hashlib.sha256(f"copilot-admin-recovery:{_normalize(code)}".encode()).hexdigest()


def mfa_verify_code(*, user, code: str, request=None) -> str:
    """Check a code of `user`'s authenticator app (6 digits) or one of its recovery codes; the
    factor that matched. Wrong, replayed or used: `SecondFactorRefused` (`invalid_otp`, counted
    and audited); too many failures: `login_throttled` (429, `retry_after`)."""
    mfa_throttle_check(user=user)
    normalized = _normalize(code or "")
    if normalized.isdigit() and len(normalized) == 6:
        for device in mfa_totp_devices(user=user):
            # verify_token refuses a time step at or before the last accepted one (replay).
            if device.verify_token(normalized):
                _throttle_reset(user)
                return Factor.TOTP
        raise _failure(user, factor=Factor.TOTP, request=request, reason="wrong_or_replayed")
    if normalized:
        with transaction.atomic():
            recovery = (
                MfaRecoveryCode.objects.select_for_update()
                .filter(user=user, used_at__isnull=True, code_hash=_recovery_hash(normalized))
                .first()
            )
            if recovery is not None:
                recovery.used_at = timezone.now()
                recovery.save(update_fields=["used_at"])
                _audit(
                    user,
                    action="identity.mfa_recovery_code_used",
                    request=request,
                    object_id=recovery.pk,
                    object_repr=f"Recovery code of {user.email}",
                    metadata={"factor": Factor.RECOVERY_CODE, "left": mfa_recovery_codes_left(user=user)},
                )
        if recovery is not None:
            _throttle_reset(user)
            return Factor.RECOVERY_CODE
    raise _failure(user, factor=Factor.RECOVERY_CODE, request=request, reason="wrong_or_used")


def mfa_reauth_failed(*, user, request=None) -> None:
    """A wrong password on the re-authentication page: counted and audited like a failed second factor."""
    _throttle_failure(user)
    with transaction.atomic():
        _audit(
            user,
            action="identity.mfa_reauth_failed",
            request=request,
            outcome=Outcome.FAILURE,
            object_repr=f"Re-authentication of {user.email}",
        )


@receiver(password_verified, dispatch_uid="mfa_second_factor")
def mfa_password_verified(sender, *, request, user, otp=None, **kwargs):
    """The token API after a correct password: an account with a factor needs `otp`; an account
    that must enrol and has not cannot get a token until it enrols on the web."""
    if mfa_has_factor(user=user):
        if not otp:
            raise SecondFactorRefused("This account uses MFA: send `otp` (an authenticator code or a recovery code).")
        mfa_verify_code(user=user, code=otp, request=request)
    elif mfa_enrolment_required(user=user):
        raise SecondFactorRefused("This account must enrol a second factor first: sign in on the web to set it up.")


# -- TOTP enrolment ------------------------------------------------------------------------------


def mfa_totp_begin(*, user) -> TOTPDevice:
    """A new, unconfirmed authenticator for `user` (its secret goes into the QR code); earlier
    unconfirmed ones are dropped. It counts as a factor only once `mfa_totp_confirm` accepts a code."""
    TOTPDevice.objects.filter(user=user, confirmed=False).delete()
    return TOTPDevice.objects.create(user=user, name="Authenticator app", confirmed=False)


def mfa_totp_pending(*, user, device_id) -> TOTPDevice | None:
    return TOTPDevice.objects.filter(user=user, confirmed=False, pk=device_id).first()


def mfa_totp_confirm(*, user, device: TOTPDevice, code: str, name: str, request=None) -> list[str]:
    """Confirm an enrolment with the first code the app shows; the recovery codes to show once
    when this is the user's first factor (else none). A wrong code: `ApplicationError`."""
    normalized = _normalize(code or "")
    if not (normalized.isdigit() and len(normalized) == 6 and device.verify_token(normalized)):
        raise ApplicationError(
            "That code does not match: check the app's clock and try the current code.",
            code="invalid_otp",
            fields={"code": ["Wrong code."]},
        )
    with transaction.atomic():
        first = not mfa_has_factor(user=user)
        device.confirmed = True
        device.name = (name or "Authenticator app")[:64]
        device.save(update_fields=["confirmed", "name"])
        _audit(
            user,
            action="identity.mfa_enrolled",
            request=request,
            object_id=f"totp:{device.pk}",
            object_repr=f"Authenticator app '{device.name}' of {user.email}",
            metadata={"factor": Factor.TOTP},
        )
        return _recovery_codes_issue(user, request=request) if first else []


def mfa_totp_qr_svg(device: TOTPDevice) -> str:
    """The device's otpauth:// URI as an inline SVG QR code (no external request, no script)."""
    return segno.make(device.config_url, error="m").svg_inline(scale=4, dark="#000", light="#fff")


def mfa_totp_secret_b32(device: TOTPDevice) -> str:
    """The secret in the base32 form apps accept when typed in."""
    return b32encode(device.bin_key).decode().rstrip("=")


# -- recovery codes ------------------------------------------------------------------------------


def _recovery_codes_issue(user, *, request) -> list[str]:
    MfaRecoveryCode.objects.filter(user=user).delete()
    codes = []
    for _ in range(RECOVERY_CODE_COUNT):
        raw = b32encode(secrets.token_bytes(10)).decode().lower()  # 80 bits, 16 characters
        codes.append("-".join(raw[i : i + 4] for i in range(0, 16, 4)))
    MfaRecoveryCode.objects.bulk_create(MfaRecoveryCode(user=user, code_hash=_recovery_hash(c)) for c in codes)
    _audit(
        user,
        action="identity.mfa_recovery_codes_issued",
        request=request,
        object_repr=f"Recovery codes of {user.email}",
        metadata={"count": len(codes)},
    )
    return codes


def mfa_recovery_codes_regenerate(*, user, request=None) -> list[str]:
    """New recovery codes (the old ones stop working); only for a user with a factor."""
    if not mfa_has_factor(user=user):
        raise ApplicationError("Add a second factor first.", code="mfa_not_enrolled")
    with transaction.atomic():
        return _recovery_codes_issue(user, request=request)


# -- removal -------------------------------------------------------------------------------------


def mfa_factor_remove(*, user, factor: str, factor_id: int, request=None) -> None:
    """Remove one of the user's own factors (audited). A user who must have MFA cannot remove
    its last factor; with no factor left, its recovery codes go too."""
    model = TOTPDevice if factor == Factor.TOTP else MfaSecurityKey if factor == Factor.SECURITY_KEY else None
    if model is None:
        raise ApplicationError("Unknown factor.", code="not_found", status_code=404)
    with transaction.atomic():
        instance = model.objects.select_for_update().filter(user=user, pk=factor_id).first()
        if instance is None or (factor == Factor.TOTP and not instance.confirmed):
            raise ApplicationError("Unknown factor.", code="not_found", status_code=404)
        name = instance.name
        instance.delete()
        if not mfa_has_factor(user=user):
            if mfa_enrolment_required(user=user):
                transaction.set_rollback(True)
                raise ApplicationError(
                    "MFA is required for your account: add another factor before removing this one.",
                    code="mfa_required_for_account",
                    status_code=409,
                )
            MfaRecoveryCode.objects.filter(user=user).delete()
        _audit(
            user,
            action="identity.mfa_removed",
            request=request,
            object_id=f"{factor}:{factor_id}",
            object_repr=f"{'Authenticator app' if factor == Factor.TOTP else 'Security key'} '{name}' of {user.email}",
            metadata={"factor": factor},
        )


# -- security keys (WebAuthn) --------------------------------------------------------------------


def _relying_party(request) -> tuple[str, str]:
    """(rp id, expected origin): from settings, else the request's host (checked by ALLOWED_HOSTS)."""
    origin = settings.WEBAUTHN_ORIGIN or f"{request.scheme}://{request.get_host()}"
    rp_id = settings.WEBAUTHN_RP_ID or request.get_host().rsplit(":", 1)[0].strip("[]")
    return rp_id, origin


_REG_CHALLENGE = "mfa_webauthn_registration_challenge"
_AUTH_CHALLENGE = "mfa_webauthn_authentication_challenge"


def mfa_security_key_register_begin(*, user, request) -> str:
    """The options (JSON) for navigator.credentials.create(); the challenge is kept in the session."""
    rp_id, _origin = _relying_party(request)
    options = generate_registration_options(
        rp_id=rp_id,
        rp_name=settings.WEBAUTHN_RP_NAME,
        user_id=str(user.pk).encode(),
        user_name=user.email,
        user_display_name=user.full_name or user.email,
        exclude_credentials=[
            PublicKeyCredentialDescriptor(id=bytes(k.credential_id)) for k in mfa_security_keys(user=user)
        ],
        authenticator_selection=AuthenticatorSelectionCriteria(
            resident_key=ResidentKeyRequirement.DISCOURAGED, user_verification=UserVerificationRequirement.PREFERRED
        ),
    )
    request.session[_REG_CHALLENGE] = bytes_to_base64url(options.challenge)
    return options_to_json(options)


def mfa_security_key_register_finish(*, user, request, credential: dict | str, name: str) -> MfaSecurityKey:
    """Verify the authenticator's answer to the session's challenge and store the key (audited).
    A missing challenge or a bad answer: `ApplicationError` (`invalid_security_key`)."""
    challenge = request.session.pop(_REG_CHALLENGE, None)
    rp_id, origin = _relying_party(request)
    if not challenge:
        raise ApplicationError("Start the registration again.", code="invalid_security_key")
    try:
        verified = verify_registration_response(
            credential=json.dumps(credential),
            expected_challenge=base64url_to_bytes(challenge),
            expected_rp_id=rp_id,
            expected_origin=origin,
            require_user_verification=False,
        )
    except (WebAuthnException, ValueError, TypeError, KeyError) as exc:
        raise ApplicationError(f"The security key's answer was refused: {exc}", code="invalid_security_key") from None
    credential_b64 = bytes_to_base64url(verified.credential_id)
    with transaction.atomic():
        if MfaSecurityKey.objects.filter(credential_id_b64=credential_b64).exists():
            raise ApplicationError("This security key is registered already.", code="invalid_security_key")
        key = MfaSecurityKey.objects.create(
            user=user,
            name=(name or "Security key")[:64],
            credential_id=verified.credential_id,
            credential_id_b64=credential_b64,
            public_key=verified.credential_public_key,
            sign_count=verified.sign_count,
        )
        first = not TOTPDevice.objects.filter(user=user, confirmed=True).exists() and not (
            MfaSecurityKey.objects.filter(user=user).exclude(pk=key.pk).exists()
        )
        _audit(
            user,
            action="identity.mfa_enrolled",
            request=request,
            object_id=f"security_key:{key.pk}",
            object_repr=f"Security key '{key.name}' of {user.email}",
            metadata={"factor": Factor.SECURITY_KEY},
        )
        key.recovery_codes = _recovery_codes_issue(user, request=request) if first else []
    return key


def mfa_security_key_authenticate_begin(*, user, request) -> str:
    """The options (JSON) for navigator.credentials.get() with the user's keys."""
    rp_id, _origin = _relying_party(request)
    options = generate_authentication_options(
        rp_id=rp_id,
        allow_credentials=[
            PublicKeyCredentialDescriptor(id=bytes(k.credential_id)) for k in mfa_security_keys(user=user)
        ],
        user_verification=UserVerificationRequirement.PREFERRED,
    )
    request.session[_AUTH_CHALLENGE] = bytes_to_base64url(options.challenge)
    return options_to_json(options)


def mfa_security_key_authenticate_finish(*, user, request, credential: dict) -> MfaSecurityKey:
    """Verify an assertion of one of `user`'s keys against the session's challenge (single use);
    a failure is counted and audited like a wrong code (`invalid_otp`)."""
    mfa_throttle_check(user=user)
    challenge = request.session.pop(_AUTH_CHALLENGE, None)
    rp_id, origin = _relying_party(request)
    raw_id = credential.get("rawId") or credential.get("id") if isinstance(credential, dict) else None
    key = mfa_security_keys(user=user).filter(credential_id_b64=raw_id).first() if isinstance(raw_id, str) else None
    if not challenge or key is None:
        raise _failure(user, factor=Factor.SECURITY_KEY, request=request, reason="unknown_key_or_challenge")
    try:
        verified = verify_authentication_response(
            credential=json.dumps(credential),
            expected_challenge=base64url_to_bytes(challenge),
            expected_rp_id=rp_id,
            expected_origin=origin,
            credential_public_key=bytes(key.public_key),
            credential_current_sign_count=key.sign_count,
            require_user_verification=False,
        )
    except (WebAuthnException, ValueError, TypeError, KeyError):
        raise _failure(user, factor=Factor.SECURITY_KEY, request=request, reason="assertion_refused") from None
    key.sign_count = verified.new_sign_count
    key.last_used_at = timezone.now()
    key.save(update_fields=["sign_count", "last_used_at"])
    _throttle_reset(user)
    return key


# -- the tenant policy ---------------------------------------------------------------------------


def mfa_tenant_required_set(*, actor, mfa_required: bool, request=None) -> MfaTenantPolicy:
    """Turn the tenant's `mfa_required` on or off (an administrator who manages users; audited
    in the tenant's log)."""
    permission_require(actor=actor, permission=Perm.USERS)
    with transaction.atomic():
        policy, _created = (
            MfaTenantPolicy.objects.for_tenant(actor.tenant).select_for_update().get_or_create(tenant=actor.tenant)
        )
        before = audit_snapshot(policy)
        policy.mfa_required = bool(mfa_required)
        policy.save()
        audit_change_record(
            actor=actor, tenant=actor.tenant, instance=policy, before=before, action="identity.mfa_policy_update"
        )
    return policy
