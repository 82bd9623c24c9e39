"""API shapes of the operator console's tenants (`/api/v1/platform/tenants/`)."""

from rest_framework import serializers

from copilot_admin.core.fields import APIModelSerializer
from copilot_admin.regions.models import DataZone
from tenants.models import Plan, Tenant, TenantStatus


class ZoneField(serializers.SlugRelatedField):
    def get_queryset(self):
        return DataZone.objects.all()


class TenantSerializer(APIModelSerializer):
    """Platform view of a tenant."""

    zone = ZoneField(slug_field="code")
    plan = serializers.ChoiceField(choices=Plan.choices)
    status = serializers.ChoiceField(choices=TenantStatus.choices, read_only=True)
    plan_includes_copilot = serializers.BooleanField(read_only=True)

    class Meta:
        model = Tenant
        fields = ["id", "name", "slug", "plan", "plan_includes_copilot", "zone", "status", "copilot_enabled", "created_at"]
        read_only_fields = ["copilot_enabled", "created_at"]


class TenantUpdateSerializer(TenantSerializer):
    slug = serializers.SlugField(read_only=True)
    plan = serializers.ChoiceField(choices=Plan.choices, required=False)
    status = serializers.ChoiceField(choices=TenantStatus.choices, required=False)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["zone"].required = False


