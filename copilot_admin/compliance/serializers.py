"""API representation of audit entries (read-only)."""

from rest_framework import serializers

from copilot_admin.audit.models import AuditEntry


class AuditEntrySerializer(serializers.ModelSerializer):
    created_at = serializers.DateTimeField(help_text="UTC.")
    actor = serializers.IntegerField(source="actor_id", allow_null=True, help_text="User id; empty for the system.")
    changes = serializers.DictField(help_text="{field: [before, after]}")
    metadata = serializers.DictField()
    seq = serializers.IntegerField(allow_null=True, help_text="Position in the tenant's chain; empty until sealed.")
    prev_hash = serializers.CharField(allow_null=True, help_text="Empty until sealed.")
    hash = serializers.CharField(allow_null=True, help_text="Empty until sealed.")
    sealed = serializers.BooleanField(
        help_text="Linked into the tenant's hash chain (seq, prev_hash and hash set): within seconds of recording."
    )

    class Meta:
        model = AuditEntry
        fields = [
            "id", "seq", "created_at", "actor", "actor_email", "actor_type", "remote_addr", "action", "object_type",
            "object_id", "object_repr", "changes", "metadata", "outcome", "correlation_id", "prev_hash", "hash",
            "sealed",
        ]
        read_only_fields = fields
