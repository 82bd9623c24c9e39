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
    admin_email = serializers.EmailField(
        write_only=True, required=False, help_text="Invite this address as the tenant's first administrator."
    )

    class Meta:
        model = Tenant
        fields = [
            "id", "name", "slug", "plan", "plan_includes_copilot", "zone", "status", "copilot_enabled", "created_at",
            "admin_email",
        ]
        read_only_fields = ["copilot_enabled", "created_at"]


class TenantUpdateSerializer(TenantSerializer):
    slug = serializers.SlugField(read_only=True)
    admin_email = None  # only when creating: later invitations come from the tenant's page

    class Meta(TenantSerializer.Meta):
        fields = [name for name in TenantSerializer.Meta.fields if name != "admin_email"]
    plan = serializers.ChoiceField(choices=Plan.choices, required=False)
    status = serializers.ChoiceField(choices=TenantStatus.choices, required=False)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["zone"].required = False


