"""`integration-keys/`: create (the secret shown once), list, read, revoke (DELETE)."""

from drf_spectacular.utils import extend_schema
from rest_framework import mixins, status
from rest_framework.response import Response

from copilot_admin.access.base_api import TenantViewSet
from copilot_admin.access.permissions import Perm
from copilot_admin.identity import services
from copilot_admin.identity.models import IntegrationKey
from copilot_admin.identity.serializers import IntegrationKeyCreatedSerializer, IntegrationKeySerializer


class IntegrationKeyViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, TenantViewSet):
    """The tenant's integration keys (PSA servers). DELETE revokes a key for good; it stays listed."""

    model = IntegrationKey
    serializer_class = IntegrationKeySerializer
    permissions = {
        "list": Perm.INTEGRATIONS, "retrieve": Perm.INTEGRATIONS, "create": Perm.INTEGRATIONS,
        "destroy": Perm.INTEGRATIONS,
    }
    http_method_names = ["get", "post", "delete", "head", "options"]

    def narrow_queryset(self, queryset):
        return queryset.select_related("created_by").order_by("-created_at", "-id")

    @extend_schema(request=IntegrationKeySerializer, responses={201: IntegrationKeyCreatedSerializer})
    def create(self, request, tenant_slug):
        serializer = IntegrationKeySerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        key, secret = services.integration_key_create(actor=self.membership, **serializer.validated_data)
        key.key = secret
        return Response(IntegrationKeyCreatedSerializer(key).data, status=status.HTTP_201_CREATED)

    @extend_schema(responses={204: None})
    def destroy(self, request, tenant_slug, pk):
        services.integration_key_revoke(actor=self.membership, key=self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)
