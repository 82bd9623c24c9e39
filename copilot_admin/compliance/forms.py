"""The audit log filters, shared by the pages, the list API and the export."""

from datetime import UTC, datetime, time, timedelta

from django import forms
from django.utils.dateparse import parse_date, parse_datetime

from copilot_admin.audit.models import Outcome
from copilot_admin.audit.readable import action_label, action_prefix_label, object_type_label
from copilot_admin.core.forms import StyledFormMixin

# Offered as suggestions in the filter form (the field accepts any action or prefix).
KNOWN_ACTIONS = (
    "auth.", "auth.login", "auth.login_failed", "auth.lockout", "auth.logout", "auth.token_create",
    "auth.token_revoke", "access.denied", "operator.tenant_access", "copilot.call", "audit.export",
    "audit.purge", "audit.retention_update", "tenant.update", "membership.create", "membership.update",
    "role.create", "role.update", "role.delete", "company.create", "company.update", "user.update",
)
KNOWN_OBJECT_TYPES = ("tenant", "membership", "role", "company", "user", "token", "route", "copilot.feature", "audit")


class MomentField(forms.Field):
    """A UTC moment: an ISO 8601 date-time (naive is UTC) or a date. `end_of_day` makes a
    date mean the end of that day, so `until=2026-11-20` includes the 20th."""

    def __init__(self, *, end_of_day: bool = False, **kwargs):
        self.end_of_day = end_of_day
        super().__init__(required=False, **kwargs)

    def to_python(self, value):
        value = str(value or "").strip()
        if not value:
            return None
        if len(value) > 40:
            raise forms.ValidationError("Too long for a date or date-time.")
        try:
            # A date first: parse_datetime would also read "2026-11-20" (as its midnight).
            day = parse_date(value)
            moment = None if day else parse_datetime(value.replace(" ", "T", 1))
        except ValueError:
            moment = day = None
        if moment is None and day is None:
            raise forms.ValidationError("Use a date (2026-11-20) or an ISO 8601 date-time (2026-11-20T10:00:00Z).")
        try:
            if day is not None:
                moment = datetime.combine(day, time.min) + (timedelta(days=1) if self.end_of_day else timedelta())
            return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
        except OverflowError:
            # Its UTC moment is before year 1 or after year 9999 (0001-01-01T00:00:00+23:00).
            raise forms.ValidationError("Out of range: use a moment between the years 1 and 9999 (UTC).") from None


class AuditFilterForm(StyledFormMixin, forms.Form):
    since = MomentField(label="From (UTC)", widget=forms.DateInput(attrs={"type": "date", "aria-label": "From (UTC)"}))
    until = MomentField(end_of_day=True, label="Until (UTC)",
                        widget=forms.DateInput(attrs={"type": "date", "aria-label": "Until (UTC)"}))
    actor = forms.CharField(
        required=False, max_length=254,
        widget=forms.TextInput(attrs={"placeholder": "Actor e-mail, id or 'system'", "aria-label": "Actor"}),
    )
    action = forms.CharField(
        required=False, max_length=64,
        widget=forms.TextInput(attrs={"placeholder": "Action (or prefix: auth)", "aria-label": "Action",
                                      "list": "audit-actions"}),
    )
    object_type = forms.CharField(
        required=False, max_length=64,
        widget=forms.TextInput(attrs={"placeholder": "Object type", "aria-label": "Object type",
                                      "list": "audit-object-types"}),
    )
    object_id = forms.CharField(
        required=False, max_length=64, widget=forms.TextInput(attrs={"placeholder": "Object id", "aria-label": "Object id"})
    )
    outcome = forms.ChoiceField(choices=[("", "Any outcome"), *Outcome.choices], required=False,
                                widget=forms.Select(attrs={"aria-label": "Outcome"}))
    q = forms.CharField(
        required=False, max_length=100, label="Search",
        widget=forms.TextInput(attrs={"placeholder": "Search (object, e-mail, address, correlation id)",
                                      "aria-label": "Search"}),
    )

    correlation_id = forms.CharField(
        required=False, max_length=64,
        widget=forms.TextInput(attrs={"placeholder": "Correlation id", "aria-label": "Correlation id"}),
    )
    user = forms.IntegerField(required=False, min_value=1, max_value=2**62, label="Changes to user",
                              widget=forms.NumberInput(attrs={"aria-label": "Changes to user"}))
    role = forms.IntegerField(required=False, min_value=1, max_value=2**62, label="Changes to role",
                              widget=forms.NumberInput(attrs={"aria-label": "Changes to role"}))
    company = forms.IntegerField(required=False, min_value=1, max_value=2**62, label="Changes to company",
                                 widget=forms.NumberInput(attrs={"aria-label": "Changes to company"}))

    def offer_choices(self, *, facets: dict | None = None, subjects: dict | None = None) -> None:
        """Show the action, object type and outcome filters as choices with their counts
        (`audit_facets`), and the user, role and company filters as choices of names
        (`subjects`: {field: [(id, name)]}). The fields still accept any value (the API's prefixes)."""
        for name, rows in (facets or {}).items():
            current = self.data.get(name, "") if self.is_bound else ""
            choices = [("", self.fields[name].widget.attrs.get("aria-label", name.title()) + ": any")]
            if name == "action":
                prefixes = {}
                for value, count in rows:
                    prefix = value.split(".", 1)[0]
                    prefixes[prefix] = prefixes.get(prefix, 0) + count
                choices += [(prefix, f"{action_prefix_label(prefix)} ({count})") for prefix, count in sorted(prefixes.items())]
            # Offered by name; the value stays the code the filter (and the API) takes.
            label = {"outcome": dict(Outcome.choices).get, "action": action_label,
                     "object_type": object_type_label}.get(name, str)
            choices += [(value, f"{label(value) or value} ({count})") for value, count in rows]
            if current and current not in {value for value, _ in choices}:
                choices.append((current, current))
            self.fields[name].widget = forms.Select(choices=choices, attrs={
                "aria-label": self.fields[name].widget.attrs.get("aria-label", name), "class": "form-select"})
        for name, rows in (subjects or {}).items():
            label = self.fields[name].label
            self.fields[name].widget = forms.Select(
                choices=[("", f"{label}: any"), *((str(pk), text) for pk, text in rows)],
                attrs={"aria-label": label, "class": "form-select"},
            )

    def clean(self):
        data = super().clean()
        if data.get("since") and data.get("until") and data["since"] >= data["until"]:
            self.add_error("until", "Must be after the start.")
        return data

    def filters(self) -> dict:
        """The non-empty filters, for the selector (call after is_valid())."""
        return {name: value for name, value in self.cleaned_data.items() if value not in (None, "")}

    def as_query(self) -> dict:
        """The non-empty filters as they were given (for links: next page, export)."""
        return {name: self.data[name] for name in self.fields if self.data.get(name)}


class PlatformAuditFilterForm(AuditFilterForm):
    """The same filters, over every tenant: `tenant` narrows to one (a slug, or `platform`)."""

    tenant = forms.SlugField(
        required=False, max_length=50,
        widget=forms.TextInput(attrs={"placeholder": "Tenant slug or 'platform'", "aria-label": "Tenant"}),
    )
