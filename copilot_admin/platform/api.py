"""Platform API (operators only): tenants and Azure deployments."""

from rest_framework import mixins

from copilot_admin.access.base_api import OperatorViewSet
from copilot_admin.platform import services
from copilot_admin.platform.serializers import TenantSerializer, TenantUpdateSerializer
from copilot_admin.regions import services as deployment_services
from copilot_admin.regions.selectors import deployment_list
from copilot_admin.regions.serializers import DeploymentSerializer, DeploymentUpdateSerializer
from tenants.models import Tenant


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


class PlatformDeploymentViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.CreateModelMixin,
                                mixins.UpdateModelMixin, OperatorViewSet):
    """Azure OpenAI deployments per data zone, with their health. Never a key value: `api_key_env`
    names the environment variable that holds the key."""

    filterset_fields = ["active", "auth_mode"]
    http_method_names = ["get", "post", "patch", "head", "options"]

    def get_queryset(self):
        return deployment_list()

    def get_serializer_class(self):
        return DeploymentUpdateSerializer if self.action in ("update", "partial_update") else DeploymentSerializer

    def perform_create(self, serializer):
        serializer.instance = deployment_services.deployment_create(actor=self.request.user, **serializer.validated_data)

    def perform_update(self, serializer):
        serializer.instance = deployment_services.deployment_update(
            actor=self.request.user, azure_deployment=serializer.instance, **serializer.validated_data
        )
