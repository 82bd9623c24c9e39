"""`/api/v1/tenants/<slug>/sso/`: the tenant's single sign-on (one object; `admin.identity`)."""

from drf_spectacular.utils import extend_schema
from rest_framework.response import Response

from copilot_admin.access.base_api import TenantAPIView
from copilot_admin.access.permissions import Perm
from copilot_admin.identity.sso_selectors import sso_configuration_summary
from copilot_admin.identity.sso_serializers import SsoConfigurationSerializer
from copilot_admin.identity.sso_services import sso_configuration_update
from copilot_admin.identity.sso_views import sso_callback_url


class SsoConfigurationView(TenantAPIView):
    """The OpenID Connect provider (issuer, client id, the client secret's environment variable),
    the e-mail domains with the operator's decision, enforcement, just-in-time members and the
    break-glass administrator. Every change is recorded in the tenant's audit log."""

    permissions = {"get": Perm.IDENTITY, "patch": Perm.IDENTITY}

    def _answer(self, request):
        summary = sso_configuration_summary(tenant=self.tenant)
        return Response(SsoConfigurationSerializer({**summary, "callback_url": sso_callback_url(request)}).data)

    @extend_schema(responses=SsoConfigurationSerializer)
    def get(self, request, tenant_slug):
        return self._answer(request)

    @extend_schema(request=SsoConfigurationSerializer, responses=SsoConfigurationSerializer)
    def patch(self, request, tenant_slug):
        serializer = SsoConfigurationSerializer(data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        sso_configuration_update(actor=self.membership, **serializer.validated_data)
        return self._answer(request)
