"""Forms of the operator console: creating and editing a tenant."""
from django import forms

from copilot_admin.core.forms import StyledFormMixin
from copilot_admin.regions.models import DataZone
from tenants.models import Plan, TenantStatus


class TenantCreateForm(StyledFormMixin, forms.Form):
    name = forms.CharField(max_length=120)
    slug = forms.SlugField(max_length=50)
    plan = forms.ChoiceField(choices=Plan.choices)
    zone = forms.ModelChoiceField(queryset=DataZone.objects.all(), label="Data zone")
    admin_email = forms.EmailField(
        label="First administrator's e-mail",
        help_text="Invited as the tenant's Tenant Administrator; the invitation can be re-sent from the tenant's page.",
    )


class AdminInviteForm(StyledFormMixin, forms.Form):
    email = forms.EmailField(label="E-mail")


class TenantEditForm(StyledFormMixin, forms.Form):
    name = forms.CharField(max_length=120)
    plan = forms.ChoiceField(choices=Plan.choices)
    zone = forms.ModelChoiceField(queryset=DataZone.objects.all())
    status = forms.ChoiceField(choices=TenantStatus.choices)


