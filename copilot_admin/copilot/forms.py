"""The tenant's copilot switches page form."""
from django import forms

from copilot_admin.core.forms import StyledFormMixin


class CopilotSettingsForm(StyledFormMixin, forms.Form):
    copilot_enabled = forms.BooleanField(required=False, label="Copilot enabled for this tenant")
    mfa_required = forms.BooleanField(
        required=False, label="Require MFA for administrators and auditors",
        help_text="Members holding any admin or audit permission must add a second factor on their next login.",
    )

    def __init__(self, *args, features: list[str], **kwargs):
        super().__init__(*args, **kwargs)
        for feature in features:
            self.fields[f"feature_{feature}"] = forms.BooleanField(required=False, label=feature.replace("-", " ").capitalize())


