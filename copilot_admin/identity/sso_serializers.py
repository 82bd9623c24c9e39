"""The API's shape of a tenant's single sign-on (`sso/`)."""

from rest_framework import serializers

from copilot_admin.identity.models import SsoDomainStatus


class SsoDomainSerializer(serializers.Serializer):
    domain = serializers.CharField(read_only=True)
    status = serializers.ChoiceField(choices=SsoDomainStatus.choices, read_only=True)


class SsoConfigurationSerializer(serializers.Serializer):
    enabled = serializers.BooleanField(required=False)
    issuer = serializers.URLField(required=False, allow_blank=True, max_length=500)
    client_id = serializers.CharField(required=False, allow_blank=True, max_length=255)
    client_secret_env = serializers.CharField(
        required=False,
        allow_blank=True,
        max_length=128,
        help_text="Name of the environment variable with the client secret (starts with OIDC_CLIENT_SECRET_).",
    )
    email_domains = serializers.ListField(
        child=serializers.CharField(max_length=253),
        required=False,
        max_length=20,
        help_text="The domains claimed; each takes effect once a platform operator approves it (see `domains`).",
    )
    domains = SsoDomainSerializer(many=True, read_only=True)
    enforced = serializers.BooleanField(required=False)
    jit_enabled = serializers.BooleanField(required=False)
    break_glass_email = serializers.EmailField(required=False, allow_blank=True, max_length=254)
    callback_url = serializers.CharField(read_only=True, help_text="The redirect URI to register at the provider.")


class PlatformSsoDomainSerializer(serializers.Serializer):
    id = serializers.IntegerField(read_only=True)
    tenant = serializers.CharField(source="tenant.slug", read_only=True)
    domain = serializers.CharField(read_only=True)
    status = serializers.ChoiceField(choices=SsoDomainStatus.choices, read_only=True)
    requested_at = serializers.DateTimeField(read_only=True)
    decided_at = serializers.DateTimeField(read_only=True, allow_null=True)
