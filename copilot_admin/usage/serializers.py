"""API representations of limits, usage aggregates and abuse cases."""

from datetime import timedelta

from rest_framework import serializers

from copilot_admin.access.permissions import feature_choices
from copilot_admin.core.fields import CatalogueChoiceField, JSONBooleanField, QueryParamsSerializer
from copilot_admin.usage.exports import ExportFormat, GroupBy
from copilot_admin.usage.limits import (
    ABUSE_RULE_FIELDS,
    LIMIT_FIELDS,
    MAX_WARNING_THRESHOLDS,
    PERCENT_FIELDS,
    PLATFORM_FIELDS,
    POLICY_FIELDS,
    column_maximum,
)
from copilot_admin.usage.models import (
    AbuseCase,
    CaseKind,
    CaseResolution,
    CaseStatus,
    WebhookAttempt,
    WebhookDelivery,
    WebhookEvent,
    WebhookFormat,
)
from copilot_admin.usage.selectors import MAX_RANGE_DAYS, default_range


class StrictFieldsMixin:
    """Unknown fields are an error (a misspelt limit must not be silently ignored)."""

    def validate(self, attrs):
        unknown = sorted(set(getattr(self, "initial_data", {}) or {}) - set(self.fields))
        if unknown:
            raise serializers.ValidationError({name: ["unknown field"] for name in unknown})
        return super().validate(attrs)


def _int_fields(names, *, optional: bool = False, allow_null: bool = False, bounded: bool = False) -> dict:
    def field(name: str) -> serializers.IntegerField:
        kwargs = {"required": not optional, "allow_null": allow_null}
        if bounded:
            kwargs.update(min_value=1, max_value=100 if name in PERCENT_FIELDS else column_maximum(name))
        return serializers.IntegerField(**kwargs)

    return {name: field(name) for name in names}


def _serializer(name: str, doc: str, fields: dict, *bases) -> type:
    return type(name, (*bases, serializers.Serializer), {"__doc__": doc, "__module__": __name__, **fields})


def _thresholds_field(**kwargs) -> serializers.ListField:
    return serializers.ListField(
        child=serializers.IntegerField(min_value=1, max_value=100), max_length=MAX_WARNING_THRESHOLDS, **kwargs
    )


_SETTING_INPUTS = {
    "warning_thresholds": _thresholds_field(
        required=False, allow_null=True, allow_empty=True,
        help_text="Percentages of each limit at which a warning goes out, once per threshold and window; "
                  "null or []: the platform's.",
    ),
    "alert_digest": JSONBooleanField(
        required=False, help_text="Limit warnings by e-mail once a day instead of one e-mail per warning."
    ),
    "anomaly_auto_suspend": JSONBooleanField(
        required=False, help_text="An anomaly case also suspends the user's copilot access."
    ),
}
LimitsUpdateSerializer = _serializer(
    "LimitsUpdate",
    "PATCH `limits/`: a number overrides the platform default (within its maximum); null follows the default again. "
    "Besides the limits: the warning thresholds, the daily digest and automatic suspension on anomalies.",
    {**_int_fields(POLICY_FIELDS, optional=True, allow_null=True, bounded=True), **_SETTING_INPUTS},
    StrictFieldsMixin,
)
TenantSettingsSerializer = _serializer(
    "LimitOwnSettings", "The tenant's own alert settings; null thresholds: the platform's.",
    {
        "warning_thresholds": _thresholds_field(allow_null=True),
        "alert_digest": serializers.BooleanField(allow_null=True),
        "anomaly_auto_suspend": serializers.BooleanField(allow_null=True),
    },
)
LimitOverridesSerializer = _serializer(
    "LimitOverrides", "The tenant's own values; null: follows the platform default.",
    _int_fields(POLICY_FIELDS, allow_null=True),
)
LimitDefaultsSerializer = _serializer("LimitDefaults", "The platform defaults.", _int_fields(POLICY_FIELDS))
LimitMaximaSerializer = _serializer("LimitMaxima", "The most a tenant may set.", _int_fields(LIMIT_FIELDS))
AbuseRulesSerializer = _serializer("AbuseRules", "Strike, suspension, termination and review rules.",
                                   _int_fields(ABUSE_RULE_FIELDS))
LimitsSerializer = _serializer(
    "Limits",
    "The tenant's effective limits (the contract's fields), its overrides, the platform defaults and maxima, and the "
    "abuse rules.",
    {
        **_int_fields(POLICY_FIELDS),
        "overrides": LimitOverridesSerializer(),
        "platform_defaults": LimitDefaultsSerializer(),
        "platform_maxima": LimitMaximaSerializer(),
        "abuse_rules": AbuseRulesSerializer(),
        "warning_thresholds": _thresholds_field(help_text="The thresholds in force (percent), lowest first."),
        "alert_digest": serializers.BooleanField(),
        "anomaly_auto_suspend": serializers.BooleanField(),
        "platform_warning_thresholds": _thresholds_field(),
        "own_settings": TenantSettingsSerializer(),
    },
)
PlatformLimitsSerializer = _serializer(
    "PlatformLimits", "The platform policy: defaults, maxima (`max_<limit>`), abuse rules and warning thresholds.",
    {**_int_fields(PLATFORM_FIELDS, optional=True, bounded=True),
     "warning_thresholds": _thresholds_field(required=False, allow_empty=True)},
    StrictFieldsMixin,
)


class UsageQuerySerializer(QueryParamsSerializer):
    since = serializers.DateField(
        required=False, help_text="First day (UTC), included; default 29 days before `until`."
    )
    until = serializers.DateField(required=False, help_text="Last day (UTC), included; default today.")
    user = serializers.IntegerField(required=False, min_value=1, max_value=2**53, help_text="A user (membership) id.")
    feature = CatalogueChoiceField(required=False, choices=feature_choices)

    def validate(self, attrs):
        default_since, default_until = default_range()
        until = attrs.get("until") or default_until
        try:
            since = attrs.get("since") or until - (default_until - default_since)
        except OverflowError:
            raise serializers.ValidationError({"until": ["out of range"]}) from None
        if since > until:
            raise serializers.ValidationError({"since": ["after until"]})
        if until - since > timedelta(days=MAX_RANGE_DAYS - 1):
            raise serializers.ValidationError({"since": [f"at most {MAX_RANGE_DAYS} days"]})
        return {**attrs, "since": since, "until": until}


class UsageExportQuerySerializer(UsageQuerySerializer):
    format = serializers.ChoiceField(choices=ExportFormat.CHOICES, default=ExportFormat.CSV)
    group_by = serializers.ChoiceField(choices=GroupBy.CHOICES, default=GroupBy.DAY)


class UsageNumbersSerializer(serializers.Serializer):
    requests = serializers.IntegerField(help_text="Calls that passed the limits.")
    failed = serializers.IntegerField()
    filtered = serializers.IntegerField(help_text="Content-filter refusals.")
    rate_limited = serializers.IntegerField(help_text="Calls refused by a usage limit.")
    prompt_tokens = serializers.IntegerField()
    completion_tokens = serializers.IntegerField()
    tokens = serializers.IntegerField()


class UsageDaySerializer(UsageNumbersSerializer):
    day = serializers.DateField()


class UsageFeatureSerializer(UsageNumbersSerializer):
    feature = serializers.CharField()


class UsageUserSerializer(UsageNumbersSerializer):
    user = serializers.IntegerField(help_text="Membership id.")
    email = serializers.EmailField()
    full_name = serializers.CharField()


class NearLimitSerializer(serializers.Serializer):
    limit = serializers.CharField()
    user = serializers.IntegerField(allow_null=True, help_text="Membership id; null for the tenant's own limit.")
    email = serializers.CharField(allow_blank=True)
    used = serializers.IntegerField()
    limit_value = serializers.IntegerField()
    percent = serializers.IntegerField()


class UsageSummarySerializer(serializers.Serializer):
    since = serializers.DateField()
    until = serializers.DateField()
    totals = UsageNumbersSerializer()
    per_day = UsageDaySerializer(many=True)
    per_feature = UsageFeatureSerializer(many=True)
    per_user = UsageUserSerializer(many=True, help_text="The heaviest users by tokens (at most 50).")
    near_limit = NearLimitSerializer(many=True, help_text="At or above the warning threshold now.")


class CaseFilterSerializer(QueryParamsSerializer):
    """The filters of the tenant's abuse case list (query parameters): an unknown value is a 400."""

    status = serializers.ChoiceField(choices=CaseStatus.choices, required=False)
    kind = serializers.ChoiceField(choices=CaseKind.choices, required=False)
    user = serializers.IntegerField(required=False, min_value=1, max_value=2**63 - 1, help_text="A user (membership) id.")


class PlatformCaseFilterSerializer(serializers.Serializer):
    """The filter of the operators' termination case list: `open` by default, `status=` for all."""

    status = serializers.ChoiceField(choices=CaseStatus.choices, required=False, allow_blank=True, default=CaseStatus.OPEN)


class AbuseCaseSerializer(serializers.ModelSerializer):
    user = serializers.IntegerField(source="membership_id", read_only=True, help_text="Membership id.")
    # Read-only model fields lose their blank choice; an open case has no resolution yet.
    resolution = serializers.ChoiceField(choices=CaseResolution.choices, allow_blank=True, read_only=True)
    email = serializers.EmailField(source="membership.user.email", read_only=True)
    opened_by = serializers.SerializerMethodField(help_text="E-mail of who opened it; null: the system.")
    resolved_by = serializers.SerializerMethodField(help_text="E-mail of who resolved it; null: the system or open.")
    access_status = serializers.CharField(read_only=True, help_text="The user's copilot access now.")

    class Meta:
        model = AbuseCase
        fields = [
            "id", "user", "email", "kind", "status", "summary", "details", "suspended_until", "opened_at",
            "opened_by", "resolution", "resolution_reason", "resolved_at", "resolved_by", "access_status",
        ]
        read_only_fields = fields

    def get_opened_by(self, case) -> str | None:
        return case.opened_by.email if case.opened_by_id else None

    def get_resolved_by(self, case) -> str | None:
        return case.resolved_by.email if case.resolved_by_id else None


class PlatformAbuseCaseSerializer(AbuseCaseSerializer):
    tenant = serializers.SlugRelatedField(slug_field="slug", read_only=True)

    class Meta(AbuseCaseSerializer.Meta):
        fields = ["tenant", *AbuseCaseSerializer.Meta.fields]
        read_only_fields = fields


class CaseDecisionSerializer(serializers.Serializer):
    reason = serializers.CharField(max_length=500, help_text="Why; recorded in the case, the audit log and the e-mail.")


# -- webhooks ---------------------------------------------------------------------------------

class WebhookSerializer(StrictFieldsMixin, serializers.Serializer):
    """A webhook: where to POST which events, in which format. `secret` is write-only: given on
    create (or generated when left out) and on change, never shown again; the create answer
    carries it once in `secret` when it was generated."""

    id = serializers.IntegerField(read_only=True)
    url = serializers.URLField(max_length=500)
    events = serializers.ListField(child=serializers.ChoiceField(choices=WebhookEvent.choices), min_length=1,
                                   max_length=len(WebhookEvent.values))
    format = serializers.ChoiceField(choices=WebhookFormat.choices, default=WebhookFormat.JSON)
    active = JSONBooleanField(default=True)
    secret = serializers.CharField(write_only=True, required=False, min_length=16, max_length=200, trim_whitespace=True)
    consecutive_failures = serializers.IntegerField(read_only=True)
    disabled_reason = serializers.CharField(read_only=True)
    created_at = serializers.DateTimeField(read_only=True)
    updated_at = serializers.DateTimeField(read_only=True)


class WebhookCreatedSerializer(WebhookSerializer):
    """The answer to a create: the webhook, and its signing secret this one time."""

    signing_secret = serializers.CharField(read_only=True, help_text="Shown only in this answer.")


class WebhookAttemptSerializer(serializers.ModelSerializer):
    class Meta:
        model = WebhookAttempt
        fields = ["number", "response_status", "latency_ms", "error", "retry_in_seconds", "attempted_at"]
        read_only_fields = fields


class WebhookDeliverySerializer(serializers.ModelSerializer):
    """One event for the webhook and its attempts (status, latency, error)."""

    attempt_log = WebhookAttemptSerializer(many=True, read_only=True)

    class Meta:
        model = WebhookDelivery
        fields = ["id", "event", "status", "attempts", "response_status", "latency_ms", "last_error", "created_at",
                  "last_attempt_at", "next_attempt_at", "delivered_at", "attempt_log"]
        read_only_fields = fields
