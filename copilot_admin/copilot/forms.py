"""The tenant's copilot switches page form."""
from django import forms

from copilot_admin.core.forms import StyledFormMixin


class CopilotSettingsForm(StyledFormMixin, forms.Form):
    copilot_enabled = forms.BooleanField(required=False, label="Copilot enabled for this tenant")
    mfa_required = forms.BooleanField(
        required=False, label="Require MFA for administrators and auditors",
        help_text="Members holding any admin or audit permission must add a second factor on their next login.",
    )

    def __init__(self, *args, features: dict[str, str], read_only: bool = False, **kwargs):
        """`features`: slug -> label. `read_only`: the plan does not include the copilot; the
        copilot switches are shown as they are and cannot change (a disabled field keeps its initial
        value); the MFA switch stays live."""
        super().__init__(*args, **kwargs)
        for feature, label in features.items():
            self.fields[f"feature_{feature}"] = forms.BooleanField(required=False, label=label)
        if read_only:
            for name, field in self.fields.items():
                if name == "copilot_enabled" or name.startswith("feature_"):
                    field.disabled = True


