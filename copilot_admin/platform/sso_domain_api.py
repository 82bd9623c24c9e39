"""Platform API (operators only): tenants' claims on e-mail domains for single sign-on."""

from drf_spectacular.utils import extend_schema
from rest_framework import mixins
from rest_framework.decorators import action
from rest_framework.response import Response

from copilot_admin.access.base_api import OperatorViewSet
from copilot_admin.identity.models import SsoDomainStatus
from copilot_admin.identity.sso_selectors import sso_domain_claims
from copilot_admin.identity.sso_serializers import (
    PlatformSsoDomainSerializer,
    SsoDomainDecisionSerializer,
    SsoDomainFilterSerializer,
)
from copilot_admin.identity.sso_services import sso_domain_decide


class PlatformSsoDomainViewSet(mixins.ListModelMixin, OperatorViewSet):
    """Domain claims of every tenant (pending by default; `status=approved|rejected`, or `status=all`)."""

    serializer_class = PlatformSsoDomainSerializer
    filter_backends: list = []

    def get_queryset(self):
        status = None
        if self.action == "list":
            filters = SsoDomainFilterSerializer(data=self.request.query_params)
            filters.is_valid(raise_exception=True)
            status = filters.validated_data["status"]
        return sso_domain_claims(status=status if status in SsoDomainStatus.values else None)

    @extend_schema(parameters=[SsoDomainFilterSerializer])
    def list(self, request, *args, **kwargs):
        return super().list(request, *args, **kwargs)

    def _decide(self, pk, approve: bool):
        SsoDomainDecisionSerializer(data=self.request.data).is_valid(raise_exception=True)
        claim = sso_domain_decide(actor=self.request.user, domain_id=int(pk), approve=approve)
        return Response(PlatformSsoDomainSerializer(claim).data)

    @extend_schema(request=SsoDomainDecisionSerializer, responses=PlatformSsoDomainSerializer)
    @action(detail=True, methods=["post"])
    def approve(self, request, pk=None):
        """Approve the claim: the domain signs in with the tenant's SSO (recorded in its audit log)."""
        return self._decide(pk, True)

    @extend_schema(request=SsoDomainDecisionSerializer, responses=PlatformSsoDomainSerializer)
    @action(detail=True, methods=["post"])
    def reject(self, request, pk=None):
        """Reject (or revoke) the claim; the domain is free for another tenant's claim."""
        return self._decide(pk, False)
