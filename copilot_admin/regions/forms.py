from django import forms

from copilot_admin.core.forms import StyledFormMixin
from copilot_admin.regions.models import API_KEY_ENV_HELP, AuthMode, DataZone, api_key_env_allowed


class DeploymentForm(StyledFormMixin, forms.Form):
    """The operator's deployment editor; the service validates and decides."""

    zone = forms.ModelChoiceField(queryset=DataZone.objects.all())
    name = forms.SlugField(max_length=64, help_text="Our name for it, shown in usage records and logs.")
    endpoint = forms.URLField(max_length=255, assume_scheme="https", help_text="https://<resource>.openai.azure.com")
    deployment = forms.CharField(max_length=128, help_text="The deployment name on the Azure resource.")
    api_version = forms.CharField(max_length=32, initial="2024-10-21", label="API version")
    auth_mode = forms.ChoiceField(choices=AuthMode.choices, label="Authentication")
    api_key_env = forms.CharField(
        max_length=128, required=False, label="API key environment variable",
        help_text="API key authentication: the name of the variable holding the key (never the key itself), "
        "AZURE_OPENAI_KEY_<NAME>.",
    )
    priority = forms.IntegerField(min_value=0, initial=100, help_text="Lower is tried first.")
    active = forms.BooleanField(required=False, initial=True)

    def clean(self):
        cleaned = super().clean()
        if cleaned.get("auth_mode") == AuthMode.API_KEY and not api_key_env_allowed(cleaned.get("api_key_env", "")):
            self.add_error("api_key_env", API_KEY_ENV_HELP)
        return cleaned
