from django import forms
from django.contrib.auth.forms import AuthenticationForm, PasswordChangeForm

from copilot_admin.access.models import SecurityRole
from copilot_admin.core.forms import StyledFormMixin
from copilot_admin.core.timezones import time_zone_choices, validate_time_zone
from tenants.models import ClientCompany, UserType


class EmailAuthenticationForm(StyledFormMixin, AuthenticationForm):
    username = forms.EmailField(label="E-mail", widget=forms.EmailInput(attrs={"autofocus": True, "autocomplete": "email"}))


class MembershipFilterForm(StyledFormMixin, forms.Form):
    user_type = forms.ChoiceField(choices=[("", "Any type"), *UserType.choices], required=False)
    role = forms.ModelChoiceField(queryset=SecurityRole.objects.none(), required=False, empty_label="Any role")
    is_active = forms.ChoiceField(choices=[("", "Any status"), ("1", "Active"), ("0", "Inactive")], required=False)
    q = forms.CharField(
        required=False, label="Search", max_length=100,
        widget=forms.TextInput(attrs={"placeholder": "Search name or e-mail", "aria-label": "Search name or e-mail"}),
    )

    def __init__(self, *args, tenant, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["role"].queryset = SecurityRole.objects.for_tenant(tenant)


class _AssignmentFields(StyledFormMixin, forms.Form):
    role = forms.ModelChoiceField(queryset=SecurityRole.objects.none())
    companies = forms.ModelMultipleChoiceField(
        queryset=ClientCompany.objects.none(),
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text="Co-managed users only: the client companies they co-manage.",
    )

    def __init__(self, *args, tenant, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["role"].queryset = SecurityRole.objects.for_tenant(tenant).filter(is_active=True)
        self.fields["companies"].queryset = ClientCompany.objects.for_tenant(tenant).filter(co_managed=True)


class MembershipCreateForm(_AssignmentFields):
    email = forms.EmailField(max_length=254, label="E-mail")
    full_name = forms.CharField(
        max_length=150, required=False, label="Name",
        help_text="Used only if the address has no account yet; an existing account keeps its own name.",
    )
    user_type = forms.ChoiceField(choices=UserType.choices, initial=UserType.INTERNAL)
    field_order = ["email", "full_name", "user_type", "role", "companies"]


class MembershipEditForm(_AssignmentFields):
    is_active = forms.BooleanField(required=False, label="Active")


class AccountNameForm(StyledFormMixin, forms.Form):
    full_name = forms.CharField(max_length=150, required=False, label="Name")


class AccountTimeZoneForm(StyledFormMixin, forms.Form):
    """The zone pages show this account times in: common zones first, then all by region."""

    time_zone = forms.ChoiceField(
        label="Time zone", required=False, validators=[validate_time_zone],
        help_text="Pages show times in this zone. Exports, the API and e-mails stay in UTC.",
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["time_zone"].choices = time_zone_choices()

    def clean_time_zone(self) -> str:
        # UTC is stored as blank: the default, and what a user who never chose has.
        value = self.cleaned_data["time_zone"]
        return "" if value == "UTC" else value


class StyledPasswordChangeForm(StyledFormMixin, PasswordChangeForm):
    """Change one's own password: the current one first."""


class CompanyForm(StyledFormMixin, forms.Form):
    name = forms.CharField(max_length=150)
    co_managed = forms.BooleanField(required=False, label="Co-management enabled")






