"""The security-role editor form."""

from django import forms

from copilot_admin.access.permissions import modules, permission_choices
from copilot_admin.core.forms import StyledFormMixin
from tenants.models import UserType


class RoleForm(StyledFormMixin, forms.Form):
    """Name, user type and the permission matrix (one checkbox per catalogue code)."""

    name = forms.CharField(max_length=80)
    description = forms.CharField(max_length=255, required=False)
    user_type = forms.ChoiceField(choices=UserType.choices)
    permissions = forms.MultipleChoiceField(
        choices=permission_choices, required=False, widget=forms.CheckboxSelectMultiple
    )

    def __init__(self, *args, lock_user_type: bool = False, **kwargs):
        super().__init__(*args, **kwargs)
        if lock_user_type:
            self.fields["user_type"].disabled = True

    def matrix(self):
        """The permission checkboxes grouped by module, for the matrix editor."""
        selected = set(self["permissions"].value() or [])
        return [
            {"name": module.name, "permissions": [
                {"code": code, "label": label, "checked": code in selected} for code, label in module.permissions
            ]}
            for module in modules()
        ]
