"""Forms of the usage pages: the date range, the tenant's limits, case decisions, the platform policy,
webhooks."""

from datetime import timedelta

from django import forms

from copilot_admin.core.forms import StyledFormMixin
from copilot_admin.usage.limits import (
    ABUSE_RULE_FIELDS,
    LIMIT_FIELDS,
    MAX_WARNING_THRESHOLDS,
    PERCENT_FIELDS,
    POLICY_FIELDS,
)
from copilot_admin.usage.models import (
    CaseKind,
    CaseStatus,
    LimitName,
    PlatformLimitPolicy,
    WebhookEvent,
    WebhookFormat,
)
from copilot_admin.usage.selectors import MAX_RANGE_DAYS, default_range

_LABELS = {
    **{name: LimitName(name).label for name in LIMIT_FIELDS},
    "warning_threshold_percent": "Warning threshold (%)",
}


class UsageRangeForm(StyledFormMixin, forms.Form):
    """The days a usage page covers (UTC, both included); the last 30 days by default."""

    since = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}))
    until = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}))

    def clean(self):
        data = super().clean()
        default_since, default_until = default_range()
        until = data.get("until") or default_until
        try:
            since = data.get("since") or (until - (default_until - default_since))
        except OverflowError:
            raise forms.ValidationError("The end day is out of range.") from None
        if since > until:
            raise forms.ValidationError("The start day is after the end day.")
        if until - since > timedelta(days=MAX_RANGE_DAYS - 1):
            raise forms.ValidationError(f"Choose at most {MAX_RANGE_DAYS} days.")
        data["since"], data["until"] = since, until
        return data

    def range(self) -> tuple:
        if self.is_valid():
            return self.cleaned_data["since"], self.cleaned_data["until"]
        return default_range()


class TenantLimitsForm(StyledFormMixin, forms.Form):
    """The tenant's overrides; an empty field follows the platform default."""

    def __init__(self, *args, describe: dict, **kwargs):
        super().__init__(*args, **kwargs)
        for name in POLICY_FIELDS:
            high = 100 if name in PERCENT_FIELDS else describe["platform_maxima"][name]
            default = describe["platform_defaults"][name]
            help_text = f"Platform default {default:,}" + ("" if name in PERCENT_FIELDS else f"; at most {high:,}")
            self.fields[name] = forms.IntegerField(
                label=_LABELS[name], required=False, min_value=1, max_value=high,
                help_text=help_text + ". Leave empty to follow the default.",
                widget=forms.NumberInput(attrs={"class": "form-control"}),
            )
        platform_thresholds = ", ".join(f"{t}%" for t in describe["platform_warning_thresholds"]) or "none"
        self.fields["warning_thresholds"] = forms.CharField(
            label="Warning thresholds (%)", required=False,
            help_text=f"Up to {MAX_WARNING_THRESHOLDS} percentages, comma-separated (e.g. 70, 90); each warns once "
                      f"per limit and window. Empty: the warning threshold above and the platform's higher ones "
                      f"({platform_thresholds}).",
        )
        self.fields["alert_digest"] = forms.BooleanField(
            label="Daily digest instead of one e-mail per warning", required=False,
            help_text="Per-minute limits never e-mail: they show on the dashboard and in webhooks.",
        )
        self.fields["anomaly_auto_suspend"] = forms.BooleanField(
            label="Suspend automatically on unusual usage", required=False,
            help_text="Off: an anomaly opens a case for an administrator to look at and changes nothing.",
        )

    def clean_warning_thresholds(self) -> list[int] | None:
        text = (self.cleaned_data.get("warning_thresholds") or "").replace("%", "")
        parts = [part.strip() for part in text.split(",") if part.strip()]
        if not parts:
            return None
        if not all(part.isdigit() for part in parts):
            raise forms.ValidationError("Whole percentages separated by commas, e.g. 70, 90.")
        return [int(part) for part in parts]


class CaseDecisionForm(StyledFormMixin, forms.Form):
    """A decision on an open abuse case, with its reason (recorded and e-mailed)."""

    ACTIONS = {
        "reinstate": "Reinstate copilot access",
        "terminate": "Terminate copilot access (until a platform operator reinstates it)",
        "dismiss": "Dismiss the case (the access stays as it is)",
    }

    action = forms.ChoiceField(widget=forms.RadioSelect)
    reason = forms.CharField(max_length=500, widget=forms.Textarea(attrs={"rows": 3}))

    def __init__(self, *args, actions: list[str], **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["action"].choices = [(name, self.ACTIONS[name]) for name in actions]
        self.fields["action"].widget.attrs["class"] = "form-check-input"


def case_actions(case, *, access_status: str) -> list[str]:
    """The decisions a tenant administrator can take on a case now."""
    if not case.is_open:
        return []
    if case.kind == CaseKind.TERMINATION:
        return []
    actions = []
    if case.kind == CaseKind.SUSPENSION or access_status != "active":
        actions.append("reinstate")
    actions += ["terminate", "dismiss"]
    return actions


class CaseFilterForm(StyledFormMixin, forms.Form):
    status = forms.ChoiceField(required=False, choices=[("", "Any status"), *CaseStatus.choices])
    kind = forms.ChoiceField(required=False, choices=[("", "Any kind"), *CaseKind.choices])


class ReasonForm(StyledFormMixin, forms.Form):
    reason = forms.CharField(max_length=500, widget=forms.Textarea(attrs={"rows": 3}))


class PlatformLimitsForm(StyledFormMixin, forms.ModelForm):
    """Defaults, maxima and abuse rules of the platform policy."""

    class Meta:
        model = PlatformLimitPolicy
        fields = [*POLICY_FIELDS, *(f"max_{name}" for name in LIMIT_FIELDS), *ABUSE_RULE_FIELDS]


class WebhookForm(StyledFormMixin, forms.Form):
    """A webhook's settings. The secret is write-only: left blank it is generated (new webhook)
    or kept (existing one)."""

    url = forms.URLField(label="URL", max_length=500, assume_scheme="https",
                         help_text="https:// to a public address (Microsoft Teams, Slack or your own receiver).")
    events = forms.MultipleChoiceField(choices=WebhookEvent.choices, widget=forms.CheckboxSelectMultiple)
    format = forms.ChoiceField(choices=WebhookFormat.choices, initial=WebhookFormat.JSON)
    active = forms.BooleanField(required=False, initial=True, label="Active")
    secret = forms.CharField(
        required=False, min_length=16, max_length=200, strip=True, label="Signing secret",
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
        help_text="Leave blank to generate one (new webhook) or keep the current one. Never shown again once saved.",
    )


class ConfirmForm(forms.Form):
    """A button that confirms an action (send a test event, delete)."""
