"""OpenAPI description of the copilot call. The service validates the body itself (after the
access checks, in the contract's order) and keeps only the allowed fields; these serializers
document the request and the answers."""

from rest_framework import serializers

from copilot_admin.access.permissions import feature_names
from copilot_admin.copilot.minimize import DEFAULT_LIMITS
from copilot_admin.core.fields import JSONBooleanField
from copilot_admin.core.schema import ErrorDetailSerializer
from copilot_admin.identity.mfa import mfa_tenant_required


class ContactSerializer(serializers.Serializer):
    first_name = serializers.CharField(required=False, allow_blank=True, max_length=DEFAULT_LIMITS.max_name_chars)
    last_name = serializers.CharField(required=False, allow_blank=True, max_length=DEFAULT_LIMITS.max_name_chars)
    type = serializers.CharField(required=False, allow_blank=True, max_length=DEFAULT_LIMITS.max_contact_type_chars)


class ConversationEntrySerializer(serializers.Serializer):
    author = serializers.CharField(required=False, allow_blank=True, max_length=DEFAULT_LIMITS.max_author_chars)
    body = serializers.CharField(required=False, allow_blank=True, max_length=DEFAULT_LIMITS.max_entry_chars)
    at = serializers.DateTimeField(required=False)
    internal = JSONBooleanField(help_text="Internal notes never reach the model.")


class IssueSerializer(serializers.Serializer):
    summary = serializers.CharField(max_length=DEFAULT_LIMITS.max_summary_chars)
    description = serializers.CharField(required=False, allow_blank=True, max_length=DEFAULT_LIMITS.max_description_chars)
    conversation = ConversationEntrySerializer(many=True, required=False, max_length=DEFAULT_LIMITS.max_conversation_entries)


class CopilotRequestSerializer(serializers.Serializer):
    """Only contact names and type, the issue summary, description and non-internal
    conversation reach the model (with today's date); any other field is dropped."""

    company = serializers.RegexField(
        r"^[0-9]{1,18}$", help_text="Id of a client company in the caller's scope (GET companies/)."
    )
    contact = ContactSerializer(required=False)
    issue = IssueSerializer()
    acting_user = serializers.EmailField(
        required=False, max_length=254,
        help_text="With an integration key (required then): the e-mail of the member the call is made for; "
        "the whole access chain runs for that member. Never reaches the model.",
    )


class UsageSerializer(serializers.Serializer):
    prompt_tokens = serializers.IntegerField(min_value=0)
    completion_tokens = serializers.IntegerField(min_value=0)


# What every successful call answers besides the feature's fields (`Feature.result_serializer`).
# No docstring: the OpenAPI schema would show it as the description of every feature's answer.
class CallMetadataSerializer(serializers.Serializer):
    request_id = serializers.CharField(help_text="Ours: in the usage record and the audit log.")
    zone = serializers.CharField(help_text="The data zone that processed the call.")
    usage = UsageSerializer()


class CopilotErrorDetailSerializer(ErrorDetailSerializer):
    request_id = serializers.CharField(required=False, help_text="Set once the call was admitted.")
    stage = serializers.ChoiceField(choices=["prompt", "completion"], required=False, help_text="content_filtered only.")
    categories = serializers.ListField(child=serializers.CharField(), required=False, help_text="content_filtered only.")


class CopilotErrorSerializer(serializers.Serializer):
    """The contract's error shape, with what a refused or failed copilot call adds."""

    error = CopilotErrorDetailSerializer()


class CopilotSettingsSerializer(serializers.Serializer):
    copilot_enabled = JSONBooleanField(required=False)
    features = serializers.DictField(child=JSONBooleanField(), required=False)
    plan = serializers.CharField(read_only=True)
    plan_includes_copilot = serializers.BooleanField(read_only=True)
    zone = serializers.CharField(source="zone.code", read_only=True)
    mfa_required = JSONBooleanField(
        required=False,
        help_text="Members holding any admin or audit permission must enrol a second factor (changing it needs admin.users).",
    )

    def validate_features(self, value):
        unknown = sorted(set(value) - set(feature_names()))
        if unknown:
            raise serializers.ValidationError(f"Unknown feature(s): {', '.join(unknown)}.")
        return value

    def to_representation(self, tenant):
        data = super().to_representation(tenant)
        data["features"] = {feature: tenant.feature_enabled(feature) for feature in feature_names()}
        data["mfa_required"] = mfa_tenant_required(tenant=tenant)
        return data


