"""Identity: second factors of a user (MFA) and the tenant's MFA policy.

TOTP authenticators are django-otp's `TOTPDevice` (otp_totp app: drift, replay protection by
the last accepted time step); security keys and recovery codes are ours, below.
"""

from django.conf import settings
from django.db import models
from django.utils import timezone

from tenants.scoping import TenantOwned


class MfaTenantPolicy(TenantOwned):
    """The tenant's MFA setting (`settings/` `mfa_required`): when on, members holding any admin
    or audit permission must enrol a second factor on their next login before anything else.
    No row reads as off."""

    mfa_required = models.BooleanField(default=False)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta(TenantOwned.Meta):
        constraints = [models.UniqueConstraint(fields=["tenant"], name="mfa_policy_one_per_tenant")]

    def __str__(self) -> str:
        return f"MFA policy (required: {self.mfa_required})"


class MfaSecurityKey(models.Model):
    """A WebAuthn credential (security key, platform authenticator) registered by its user.
    Holds only public data: the credential id and the public key (COSE)."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="mfa_security_keys")
    name = models.CharField(max_length=64)
    credential_id = models.BinaryField(max_length=1024)
    credential_id_b64 = models.CharField(max_length=1400, unique=True)
    public_key = models.BinaryField(max_length=2048)
    sign_count = models.PositiveBigIntegerField(default=0)
    created_at = models.DateTimeField(default=timezone.now)
    last_used_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["created_at", "pk"]

    def __str__(self) -> str:
        return f"Security key {self.name}"


class MfaRecoveryCode(models.Model):
    """One single-use recovery code, stored as a password hash (Django's hasher), never in clear."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="mfa_recovery_codes")
    code_hash = models.CharField(max_length=64, db_index=True)
    created_at = models.DateTimeField(default=timezone.now)
    used_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["pk"]

    def __str__(self) -> str:
        return "Recovery code"
