"""Identity: second factors of a user (MFA), the tenant's MFA policy, and the credentials
systems hold to act in a tenant (integration keys of PSA servers).

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
class IntegrationKeyScope(models.TextChoices):
    """What a key may do. `copilot`: call the copilot for the member named in the body.
    `read`: read what the Compliance Auditor reads (audit log, usage, directory), nothing else."""

    COPILOT = "copilot", "Call the copilot for a member"
    READ = "read", "Read what an auditor reads"


class IntegrationKey(TenantOwned):
    """A key a PSA server presents as `Authorization: Bearer <key>` in one tenant.

    The secret is shown once, at creation, and stored as its digest only (knox's hashing, as
    API tokens are): `key_id` is its public head (`cak_` and 8 hex digits), by which it is
    looked up and named in the list, the audit log and usage records. A revoked key stays
    listed (`revoked_at`), never works again.
    """

    name = models.CharField(max_length=100)
    key_id = models.CharField(max_length=16, unique=True, editable=False)
    digest = models.CharField(max_length=128, editable=False)
    scopes = models.JSONField(default=list)
    expires_at = models.DateTimeField(null=True, blank=True)
    allowed_addresses = models.JSONField(default=list, blank=True, help_text="CIDR networks; empty: any address.")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+", editable=False
    )
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)
    revoked_at = models.DateTimeField(null=True, blank=True, editable=False)

    # The digest is a secret's hash; the last use changes on every call.
    AUDIT_EXCLUDED_FIELDS = ("digest", "last_used_at")

    class Meta(TenantOwned.Meta):
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["tenant", "created_at"], name="integration_key_tenant_time")]

    def __str__(self) -> str:
        return f"{self.name} ({self.key_id})"

    @property
    def is_revoked(self) -> bool:
        return self.revoked_at is not None

    def is_expired(self, now=None) -> bool:
        return self.expires_at is not None and self.expires_at <= (now or timezone.now())
