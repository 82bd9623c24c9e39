from rest_framework import serializers

from copilot_admin.access.models import SecurityRole
from copilot_admin.access.permissions import Perm
from tenants.models import UserType


class RoleSerializer(serializers.ModelSerializer):
    """A security role. Create from scratch, or with `clone_from` (a role id of this tenant)."""

    user_type = serializers.ChoiceField(choices=UserType.choices, required=False)
    permissions = serializers.ListField(child=serializers.ChoiceField(choices=Perm.choices), required=False)
    clone_from = serializers.IntegerField(write_only=True, required=False, min_value=1, max_value=2**63 - 1)
    is_system = serializers.BooleanField(read_only=True)
    users = serializers.IntegerField(source="user_count", read_only=True, default=0)

    class Meta:
        model = SecurityRole
        fields = ["id", "name", "description", "user_type", "permissions", "is_system", "is_active", "clone_from", "users"]

    def validate(self, attrs):
        if self.instance is None and "clone_from" not in attrs and "user_type" not in attrs:
            raise serializers.ValidationError({"user_type": ["This field is required unless clone_from is given."]})
        return attrs
