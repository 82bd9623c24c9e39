"""Platform API (operators only): tenants."""

from rest_framework import mixins

from copilot_admin.access.base_api import OperatorViewSet
from tenants import services
from tenants.models import Tenant
from tenants.serializers import TenantSerializer, TenantUpdateSerializer


class PlatformTenantViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.CreateModelMixin,
                            mixins.UpdateModelMixin, OperatorViewSet):
    """Create tenants, set plan, data zone and status (suspending ends the members' sessions and tokens)."""

    queryset = Tenant.objects.select_related("zone").order_by("name")
    filterset_fields = ["plan", "status"]
    http_method_names = ["get", "post", "patch", "head", "options"]

    def get_serializer_class(self):
        return TenantUpdateSerializer if self.action in ("update", "partial_update") else TenantSerializer

    def perform_create(self, serializer):
        serializer.instance = services.tenant_create(actor=self.request.user, **serializer.validated_data)

    def perform_update(self, serializer):
        serializer.instance = services.tenant_update(
            actor=self.request.user, tenant=serializer.instance, **serializer.validated_data
        )
