"""The integration key form of the `integration-keys/` page."""

from django import forms
from django.utils import timezone

from copilot_admin.core.forms import StyledFormMixin
from copilot_admin.identity.models import IntegrationKeyScope


class IntegrationKeyForm(StyledFormMixin, forms.Form):
    name = forms.CharField(max_length=100, help_text="Which system holds it, e.g. the PSA server.")
    scopes = forms.MultipleChoiceField(choices=IntegrationKeyScope.choices, widget=forms.CheckboxSelectMultiple)
    expires_at = forms.DateTimeField(
        required=False, label="Expires", widget=forms.DateTimeInput(attrs={"type": "datetime-local"}),
    )
    allowed_addresses = forms.CharField(
        required=False, widget=forms.Textarea(attrs={"rows": 3}), label="Allowed client addresses",
        help_text="One address or CIDR network per line; empty: any address.",
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # Django reads a date-time typed without a zone in the active one: the user's, on pages.
        self.fields["expires_at"].label = f"Expires ({timezone.get_current_timezone_name()})"

    def clean_allowed_addresses(self):
        return [line.strip() for line in self.cleaned_data["allowed_addresses"].splitlines() if line.strip()]
