"""API shapes of the evidence an auditor takes away: signed checkpoints, the access review and
the data-exchange record (all read-only)."""

from django import forms
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from copilot_admin.compliance.forms import MomentField
from copilot_admin.core.fields import JSONBooleanField
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
    results = CheckpointSerializer(many=True, help_text="The checkpoints, oldest first.")


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
    host = serializers.CharField(allow_blank=True)
    endpoint = serializers.CharField()
    deployment = serializers.CharField()
    api_version = serializers.CharField(allow_blank=True)
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


class ReviewItemSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    email = serializers.CharField()
    user_type = serializers.CharField()
    role = serializers.CharField()
    permissions = serializers.ListField(child=serializers.CharField())
    companies = serializers.ListField(child=serializers.CharField())
    is_active = serializers.BooleanField()
    copilot_access = serializers.CharField()
    decision = serializers.CharField()
    change = serializers.CharField(allow_blank=True, help_text="What a flag changed.")
    note = serializers.CharField(allow_blank=True)
    decided_by = serializers.CharField(source="decided_by_email", allow_blank=True, help_text="E-mail of who decided.")
    decided_at = serializers.DateTimeField(allow_null=True)


class ReviewCampaignSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    at = serializers.DateTimeField(help_text="The moment whose access is reviewed.")
    status = serializers.CharField()
    started_by = serializers.SerializerMethodField()
    completed_at = serializers.DateTimeField(allow_null=True)

    def get_started_by(self, campaign) -> str:
        return campaign.started_by.email if campaign.started_by_id else ""


class ReviewCampaignDetailSerializer(ReviewCampaignSerializer):
    items = serializers.SerializerMethodField()

    @extend_schema_field(ReviewItemSerializer(many=True))
    def get_items(self, campaign) -> list[dict]:
        return ReviewItemSerializer(self.context["items"], many=True).data


class ReviewCampaignCreateSerializer(serializers.Serializer):
    name = serializers.CharField(required=False, allow_blank=True, max_length=120, default="")


class ReviewDecisionSerializer(serializers.Serializer):
    item = serializers.IntegerField(min_value=1, max_value=2**63 - 1)
    decision = serializers.ChoiceField(choices=["confirmed", "flagged"])
    note = serializers.CharField(required=False, allow_blank=True, max_length=255, default="")
    role = serializers.IntegerField(required=False, allow_null=True, min_value=1, max_value=2**63 - 1, default=None,
                                    help_text="Flag: the role the member gets instead.")
    deactivate = JSONBooleanField(required=False, default=False, help_text="Flag: deactivate the member.")
