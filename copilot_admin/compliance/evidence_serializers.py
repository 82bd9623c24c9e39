"""API shapes of the evidence an auditor takes away: signed checkpoints, the access review and
the data-exchange record (all read-only)."""

from django import forms
from rest_framework import serializers

from copilot_admin.compliance.forms import MomentField
from copilot_admin.usage.models import AccessStatus
from tenants.models import UserType

CHECKPOINT_LIMIT_MAX = 10_000


class CheckpointSerializer(serializers.Serializer):
    sequence = serializers.IntegerField(help_text="The chain held entries 1..sequence.")
    head_hash = serializers.CharField(help_text="Hash of entry `sequence`.")
    at = serializers.CharField(help_text="When it was sealed: ISO 8601, UTC, microseconds (signed as written).")
    signature = serializers.CharField(help_text="Hex HMAC-SHA256 of the checkpoint (see the README).")
    key_id = serializers.CharField(help_text="Names the signing key.")


class CheckpointsDocumentSerializer(serializers.Serializer):
    format = serializers.CharField()
    tenant = serializers.CharField()
    chain = serializers.CharField()
    checkpoints = CheckpointSerializer(many=True, help_text="Oldest first.")


class CheckpointQuerySerializer(serializers.Serializer):
    limit = serializers.IntegerField(
        required=False, default=1000, min_value=1, max_value=CHECKPOINT_LIMIT_MAX, help_text="The newest this many."
    )
    download = serializers.BooleanField(required=False, default=False, help_text="As a file (Content-Disposition).")


class AccessReviewRowSerializer(serializers.Serializer):
    email = serializers.CharField()
    user_type = serializers.ChoiceField(choices=UserType.choices)
    role = serializers.CharField()
    permissions = serializers.ListField(child=serializers.CharField())
    companies = serializers.ListField(child=serializers.CharField())
    is_active = serializers.BooleanField()
    copilot_access = serializers.ChoiceField(choices=AccessStatus.choices)


class AccessReviewSerializer(serializers.Serializer):
    at = serializers.DateTimeField()
    results = AccessReviewRowSerializer(many=True)


class AccessReviewForm(forms.Form):
    """`at` (an ISO 8601 date-time, naive is UTC, or a date: its start) and the format."""

    at = MomentField()
    format = forms.ChoiceField(choices=[("json", "JSON"), ("csv", "CSV")], required=False)


class FieldLeavingSerializer(serializers.Serializer):
    path = serializers.CharField()
    label = serializers.CharField()


class RecipientSerializer(serializers.Serializer):
    name = serializers.CharField()
    host = serializers.CharField()
    endpoint = serializers.CharField()
    deployment = serializers.CharField()
    api_version = serializers.CharField()
    tls = serializers.BooleanField()
    auth = serializers.CharField()
    priority = serializers.IntegerField()


class ZoneSerializer(serializers.Serializer):
    code = serializers.CharField()
    name = serializers.CharField()


class StoredHereSerializer(serializers.Serializer):
    content = serializers.BooleanField(help_text="Whether ticket content or answers are stored (never).")
    statement = serializers.CharField()
    metadata_columns = serializers.ListField(child=serializers.CharField())


class DataExchangeSerializer(serializers.Serializer):
    tenant = serializers.CharField()
    zone = ZoneSerializer()
    copilot_enabled = serializers.BooleanField()
    source = serializers.CharField()
    fields_leaving = FieldLeavingSerializer(many=True)
    never_leaving = serializers.CharField()
    processor = serializers.CharField()
    recipients = RecipientSerializer(many=True)
    routing = serializers.CharField()
    transport = serializers.CharField()
    stored_here = StoredHereSerializer()
    answer = serializers.CharField()
