"""Forms of single sign-on: the login page's first step (the e-mail) and the tenant's configuration."""

from django import forms

from copilot_admin.core.forms import StyledFormMixin
from copilot_admin.core.secrets import OIDC_CLIENT_SECRET_ENV_PREFIX


class LoginEmailForm(StyledFormMixin, forms.Form):
    """The login page's first step: which account (and so whether its domain signs in with SSO)."""

    email = forms.EmailField(
        label="E-mail", max_length=254, widget=forms.EmailInput(attrs={"autofocus": True, "autocomplete": "email"})
    )


class SsoConfigurationForm(StyledFormMixin, forms.Form):
    enabled = forms.BooleanField(required=False, label="Single sign-on enabled")
    issuer = forms.URLField(
        required=False,
        max_length=500,
        label="Issuer (discovery) URL",
        assume_scheme="https",
        help_text="Entra ID: https://login.microsoftonline.com/<directory (tenant) id>/v2.0",
    )
    client_id = forms.CharField(required=False, max_length=255, label="Client (application) id")
    client_secret_env = forms.CharField(
        required=False,
        max_length=128,
        label="Client secret: environment variable",
        help_text=f"The name of the server's environment variable holding the secret; it starts with "
        f"{OIDC_CLIENT_SECRET_ENV_PREFIX}. The secret itself is never stored here.",
    )
    email_domains = forms.CharField(
        required=False,
        label="E-mail domains",
        max_length=2000,
        help_text="Comma or space separated. A platform operator approves each domain before it takes effect.",
    )
    enforced = forms.BooleanField(
        required=False,
        label="Enforce single sign-on",
        help_text="Password login (page and API) is refused for these domains, except for the break-glass account.",
    )
    jit_enabled = forms.BooleanField(
        required=False,
        label="Create pending members on first sign-in",
        help_text="An unknown user of these domains gets an inactive membership with the lowest role, "
        "for an administrator to approve.",
    )
    break_glass_email = forms.EmailField(
        required=False,
        label="Break-glass administrator (e-mail)",
        help_text="One administrator who keeps password login while single sign-on is enforced.",
    )
