"""API representation of audit entries (read-only)."""

from rest_framework import serializers

from copilot_admin.audit.models import AuditEntry
from copilot_admin.audit.readable import ReadableNames, entry_sentence


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

    summary = serializers.SerializerMethodField(help_text="What happened, in one sentence.")

    def get_summary(self, entry) -> str:
        return entry_sentence(entry)

    class Meta:
        model = AuditEntry
        fields = [
            "id", "seq", "created_at", "actor", "actor_email", "actor_type", "remote_addr", "action", "object_type",
            "object_id", "object_repr", "changes", "metadata", "outcome", "correlation_id", "prev_hash", "hash",
            "sealed", "summary",
        ]
        read_only_fields = fields


class AuditEntryDetailSerializer(serializers.Serializer):
    """One entry as the contract gives it (`GET audit/<id>/`): who, what, when, with the
    changes readable (names where the value is a related object) and its place in the chain."""

    id = serializers.IntegerField()
    at = serializers.DateTimeField(source="created_at", help_text="UTC.")
    actor = serializers.SerializerMethodField(help_text="The actor's e-mail, or `system`.")
    action = serializers.CharField()
    object_type = serializers.CharField()
    object_id = serializers.CharField()
    object_repr = serializers.CharField()
    changes = serializers.SerializerMethodField(
        help_text='{field: [before, after]}, names for related objects (a role change: ["Technician", "Auditor"]); '
                  'a many-to-many change: {"type": "m2m", "operation": "add"|"delete", "objects": [names]}.'
    )
    remote_addr = serializers.CharField()
    correlation_id = serializers.CharField()
    sealed = serializers.BooleanField()
    hash = serializers.CharField(allow_null=True, help_text="Empty until sealed.")
    prev_hash = serializers.CharField(allow_null=True, help_text="Empty until sealed.")

    def get_actor(self, entry) -> str:
        return entry.actor_email or "system"

    def get_changes(self, entry) -> dict:
        names = self.context.get("readable_names") or ReadableNames(tenant_id=entry.tenant_id)
        return names.changes(entry)
