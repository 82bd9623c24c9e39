"""The API's shape of a tenant's single sign-on (`sso/`)."""

from rest_framework import serializers

from copilot_admin.core.fields import JSONBooleanField, QueryParamsSerializer
from copilot_admin.identity.models import SsoDomainStatus


class _JSONStringMixin:
    """A JSON string, as the schema declares: a number or a boolean is 400, not silently a string."""

    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


class StringField(_JSONStringMixin, serializers.CharField):
    pass


class URLStringField(_JSONStringMixin, serializers.URLField):
    pass


class EmailStringField(_JSONStringMixin, serializers.EmailField):
    pass


class SsoDomainSerializer(serializers.Serializer):
    domain = serializers.CharField(read_only=True)
    status = serializers.ChoiceField(choices=SsoDomainStatus.choices, read_only=True)


class SsoConfigurationSerializer(serializers.Serializer):
    enabled = JSONBooleanField(required=False)
    issuer = URLStringField(required=False, allow_blank=True, max_length=500)
    client_id = StringField(required=False, allow_blank=True, max_length=255)
    client_secret_env = StringField(
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
    enforced = JSONBooleanField(required=False)
    jit_enabled = JSONBooleanField(required=False)
    break_glass_email = EmailStringField(required=False, allow_blank=True, max_length=254)
    callback_url = serializers.CharField(read_only=True, help_text="The redirect URI to register at the provider.")

    def validate(self, attrs):
        # A misspelt field must not be silently ignored (e.g. `enforce` for `enforced`).
        unknown = sorted(
            set(getattr(self, "initial_data", {}) or {})
            - {name for name, field in self.fields.items() if not field.read_only}
        )
        if unknown:
            raise serializers.ValidationError({name or "(empty)": ["unknown field"] for name in unknown})
        return super().validate(attrs)


class SsoDomainDecisionSerializer(serializers.Serializer):
    """The body of an operator's decision: empty (`{}`); anything in it is refused."""

    def validate(self, attrs):
        unknown = sorted(getattr(self, "initial_data", {}) or {})
        if unknown:
            raise serializers.ValidationError({name or "(empty)": ["unknown field"] for name in unknown})
        return attrs


class SsoDomainFilterSerializer(QueryParamsSerializer):
    """The operators' list of claims: `pending` by default, `all` for every status."""

    status = serializers.ChoiceField(choices=[*SsoDomainStatus.values, "all"], required=False, default="pending")


class PlatformSsoDomainSerializer(serializers.Serializer):
    id = serializers.IntegerField(read_only=True)
    tenant = serializers.CharField(source="tenant.slug", read_only=True)
    domain = serializers.CharField(read_only=True)
    status = serializers.ChoiceField(choices=SsoDomainStatus.choices, read_only=True)
    requested_at = serializers.DateTimeField(read_only=True)
    decided_at = serializers.DateTimeField(read_only=True, allow_null=True)
