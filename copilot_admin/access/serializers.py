from rest_framework import serializers

from copilot_admin.access.models import SecurityRole
from copilot_admin.access.permissions import permission_choices
from copilot_admin.core.fields import APIModelSerializer, CatalogueChoiceField
from tenants.models import UserType


class RoleSerializer(APIModelSerializer):
    """A security role. Create from scratch, or with `clone_from` (a role id of this tenant)."""

    user_type = serializers.ChoiceField(choices=UserType.choices, required=False)
    permissions = serializers.ListField(child=CatalogueChoiceField(choices=permission_choices), required=False)
    clone_from = serializers.IntegerField(write_only=True, required=False, min_value=1, max_value=2**63 - 1)
    is_system = serializers.BooleanField(read_only=True)
    users = serializers.SerializerMethodField(help_text="How many members hold the role.")

    class Meta:
        model = SecurityRole
        fields = ["id", "name", "description", "user_type", "permissions", "is_system", "is_active", "clone_from", "users"]

    def get_users(self, role) -> int:
        # Lists annotate the count; a role just created or changed is counted here (one query).
        count = getattr(role, "user_count", None)
        return count if count is not None else role.memberships.count()

    def validate(self, attrs):
        if self.instance is None and "clone_from" not in attrs and "user_type" not in attrs:
            raise serializers.ValidationError({"user_type": ["This field is required unless clone_from is given."]})
        return attrs
