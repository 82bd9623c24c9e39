"""Forms of the operator console: creating and editing a tenant."""
from django import forms

from copilot_admin.core.forms import StyledFormMixin
from copilot_admin.regions.models import DataZone
from tenants.models import Plan, TenantStatus


class TenantCreateForm(StyledFormMixin, forms.Form):
    name = forms.CharField(max_length=120)
    slug = forms.SlugField(max_length=50)
    plan = forms.ChoiceField(choices=Plan.choices)
    zone = forms.ModelChoiceField(queryset=DataZone.objects.all())


class TenantEditForm(StyledFormMixin, forms.Form):
    name = forms.CharField(max_length=120)
    plan = forms.ChoiceField(choices=Plan.choices)
    zone = forms.ModelChoiceField(queryset=DataZone.objects.all())
    status = forms.ChoiceField(choices=TenantStatus.choices)


