"""Platform API (operators only): the platform limit policy and terminated copilot access."""

from drf_spectacular.utils import extend_schema
from rest_framework import mixins
from rest_framework.decorators import action
from rest_framework.exceptions import NotFound
from rest_framework.response import Response

from copilot_admin.access.base_api import OperatorAPIView, OperatorViewSet
from copilot_admin.usage import selectors, services
from copilot_admin.usage.serializers import (
    CaseDecisionSerializer,
    PlatformAbuseCaseSerializer,
    PlatformCaseFilterSerializer,
    PlatformLimitsSerializer,
)


class PlatformLimitsView(OperatorAPIView):
    """Defaults and maxima of the tenants' limits, and the abuse rules."""

    @extend_schema(responses=PlatformLimitsSerializer)
    def get(self, request):
        return Response(PlatformLimitsSerializer(selectors.platform_policy()).data)

    @extend_schema(request=PlatformLimitsSerializer, responses=PlatformLimitsSerializer)
    def patch(self, request):
        serializer = PlatformLimitsSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        policy = services.platform_limits_update(actor=request.user, changes=serializer.validated_data)
        return Response(PlatformLimitsSerializer(policy).data)


class PlatformAbuseCaseViewSet(mixins.ListModelMixin, OperatorViewSet):
    """Termination cases of every tenant (open by default; `status=resolved` or `status=` for all).
    A terminated copilot access is reinstated only here, with a reason."""

    serializer_class = PlatformAbuseCaseSerializer
    filter_backends: list = []

    def get_queryset(self):
        status = None
        if self.action == "list":
            filters = PlatformCaseFilterSerializer(data=self.request.query_params)
            filters.is_valid(raise_exception=True)
            status = filters.validated_data["status"] or None
        return selectors.operator_termination_cases(status=status)

    @extend_schema(parameters=[PlatformCaseFilterSerializer])
    def list(self, request, *args, **kwargs):
        return super().list(request, *args, **kwargs)

    @extend_schema(request=CaseDecisionSerializer, responses=PlatformAbuseCaseSerializer)
    @action(detail=True, methods=["post"])
    def reinstate(self, request, pk=None):
        """Reinstate the user's copilot access; recorded in the tenant's audit log."""
        case = self.get_queryset().filter(pk=pk).first()
        if case is None:
            raise NotFound()
        serializer = CaseDecisionSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        services.case_reinstate(actor=request.user, case=case, reason=serializer.validated_data["reason"])
        return Response(PlatformAbuseCaseSerializer(self.get_queryset().get(pk=case.pk)).data)
