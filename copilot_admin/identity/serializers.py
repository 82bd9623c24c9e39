"""API representations of integration keys. The secret appears in one answer only: the create."""

from rest_framework import serializers

from copilot_admin.identity.models import IntegrationKey, IntegrationKeyScope
from copilot_admin.identity.services import MAX_ALLOWED_ADDRESSES


class IntegrationKeySerializer(serializers.ModelSerializer):
    """A key as listed: its public `prefix`, never the secret or its digest."""

    scopes = serializers.ListField(
        child=serializers.ChoiceField(choices=IntegrationKeyScope.choices), min_length=1, max_length=2,
        help_text="`copilot`: call the copilot for the member named in `acting_user`; `read`: read what an "
        "auditor reads.",
    )
    expires_at = serializers.DateTimeField(required=False, allow_null=True, help_text="Optional; in the future.")
    allowed_addresses = serializers.ListField(
        child=serializers.CharField(max_length=64), required=False, max_length=MAX_ALLOWED_ADDRESSES,
        help_text="Client addresses or CIDR networks the key works from; empty: any address.",
    )
    prefix = serializers.CharField(source="key_id", read_only=True, help_text="The key's public head.")
    created_by = serializers.SerializerMethodField()
    is_active = serializers.SerializerMethodField()

    class Meta:
        model = IntegrationKey
        fields = [
            "id", "name", "scopes", "expires_at", "allowed_addresses", "prefix", "created_by", "created_at",
            "last_used_at", "revoked_at", "is_active",
        ]
        read_only_fields = ["id", "prefix", "created_by", "created_at", "last_used_at", "revoked_at", "is_active"]
        extra_kwargs = {"name": {"max_length": 100}}

    def get_created_by(self, key) -> str | None:
        return key.created_by.email if key.created_by_id else None

    def get_is_active(self, key) -> bool:
        return not key.is_revoked and not key.is_expired()


class IntegrationKeyCreatedSerializer(IntegrationKeySerializer):
    """The create's answer: the key as listed, plus the secret, shown this once."""

    key = serializers.CharField(read_only=True, help_text="The secret: shown once, stored hashed.")

    class Meta(IntegrationKeySerializer.Meta):
        fields = [*IntegrationKeySerializer.Meta.fields, "key"]
        read_only_fields = [*IntegrationKeySerializer.Meta.read_only_fields, "key"]
