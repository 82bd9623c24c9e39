"""Tenant API of usage: `limits/` (one object), `usage/` (aggregates), `abuse-cases/` (list,
detail and decisions), `webhooks/` (alerts beside e-mail, with their delivery log). Thin
adapters over `selectors` (reads) and `services` (changes)."""

from django.http import StreamingHttpResponse
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import mixins, status
from rest_framework.decorators import action
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response

from copilot_admin.access.base_api import TenantAPIView, TenantViewSet
from copilot_admin.access.permissions import Perm
from copilot_admin.core.errors import refuse_body
from copilot_admin.core.schema import error_response
from copilot_admin.usage import selectors, services, webhook_services
from copilot_admin.usage.exports import ExportFormat, usage_export_lines, usage_grouped
from copilot_admin.usage.models import AbuseCase, Webhook
from copilot_admin.usage.serializers import (
    AbuseCaseSerializer,
    CaseDecisionSerializer,
    CaseFilterSerializer,
    LimitsSerializer,
    LimitsUpdateSerializer,
    UsageExportQuerySerializer,
    UsageQuerySerializer,
    UsageSummarySerializer,
    WebhookCreatedSerializer,
    WebhookDeliverySerializer,
    WebhookSerializer,
)


class LimitsView(TenantAPIView):
    """The tenant's usage limits: effective values, overrides, platform defaults and maxima.
    Whoever manages the limits may read them without `usage.view`."""

    permissions = {"get": Perm.USAGE_VIEW, "patch": Perm.LIMITS}
    alternatives = {"get": Perm.LIMITS}

    @extend_schema(responses=LimitsSerializer)
    def get(self, request, tenant_slug):
        return Response(LimitsSerializer(selectors.limits_describe(self.tenant)).data)

    @extend_schema(request=LimitsUpdateSerializer, responses=LimitsSerializer)
    def patch(self, request, tenant_slug):
        serializer = LimitsUpdateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        services.tenant_limits_update(actor=self.membership, changes=serializer.validated_data)
        return Response(LimitsSerializer(selectors.limits_describe(self.tenant)).data, status=status.HTTP_200_OK)


class UsageView(TenantAPIView):
    """Requests and tokens per day, feature and user between two days (default: the last 30),
    and who is near a limit now."""

    permissions = {"get": Perm.USAGE_VIEW}

    @extend_schema(parameters=[UsageQuerySerializer], responses=UsageSummarySerializer)
    def get(self, request, tenant_slug):
        query = UsageQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        data = query.validated_data
        summary = selectors.usage_summary(
            tenant=self.tenant, since=data["since"], until=data["until"],
            membership_id=data.get("user"), feature=data.get("feature"),
        )
        effective = selectors.effective_limits(self.tenant)
        near = selectors.near_limits(tenant=self.tenant, limits=effective, now=timezone.now())
        if data.get("user") is not None:
            near = [item for item in near if item.user == data["user"]]
        summary["near_limit"] = [item.as_dict() for item in near]
        return Response(UsageSummarySerializer(summary).data)


class UsageExportView(TenantAPIView):
    """Usage between two UTC days grouped by `day`, `user`, `company` or `feature`, streamed as
    CSV or JSON Lines. Metadata only: counts and tokens per group, never content."""

    permissions = {"get": Perm.USAGE_VIEW}
    renderer_classes = [JSONRenderer]

    def perform_content_negotiation(self, request, force=False):
        # `?format=` names the export's format, not a DRF renderer: errors are JSON.
        renderer = JSONRenderer()
        return renderer, renderer.media_type

    @extend_schema(
        parameters=[UsageExportQuerySerializer],
        responses={
            (200, "text/csv"): OpenApiResponse(OpenApiTypes.STR, description="A header line, then one line per group."),
            (200, "application/x-ndjson"): OpenApiResponse(OpenApiTypes.STR, description="One group per line."),
            (400, "application/json"): error_response(400, "A parameter is malformed: `fields` says which."),
            (401, "application/json"): error_response(401),
            (403, "application/json"): error_response(403, "The security role does not allow it."),
            (404, "application/json"): error_response(404),
        },
    )
    def get(self, request, tenant_slug):
        query = UsageExportQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        data = query.validated_data
        rows = usage_grouped(
            tenant=self.tenant, since=data["since"], until=data["until"], group_by=data["group_by"],
            membership_id=data.get("user"), feature=data.get("feature"),
        )
        fmt = data["format"]
        response = StreamingHttpResponse(
            usage_export_lines(rows, group_by=data["group_by"], fmt=fmt), content_type=ExportFormat.CONTENT_TYPES[fmt]
        )
        filename = f"usage-{self.tenant.slug}-{data['group_by']}-{data['since']}-{data['until']}.{fmt}"
        response["Content-Disposition"] = f'attachment; filename="{filename}"'
        response["Cache-Control"] = "no-store"
        return response


class AbuseCaseViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, TenantViewSet):
    """Abuse cases: suspensions and terminations by the strike rules, reviews opened by the
    pattern review. Decisions: `reinstate/`, `terminate/`, `dismiss/` with a `reason`.
    Whoever decides cases (`admin.limits`) may read them without `usage.view`."""

    model = AbuseCase
    serializer_class = AbuseCaseSerializer
    permissions = {
        "list": Perm.USAGE_VIEW,
        "retrieve": Perm.USAGE_VIEW,
        "reinstate": Perm.LIMITS,
        "terminate": Perm.LIMITS,
        "dismiss": Perm.LIMITS,
    }
    alternatives = {"list": Perm.LIMITS, "retrieve": Perm.LIMITS}
    filter_backends: list = []

    def narrow_queryset(self, queryset):
        if self.action == "list":
            filters = CaseFilterSerializer(data=self.request.query_params)
            filters.is_valid(raise_exception=True)
            if "status" in filters.validated_data:
                queryset = queryset.filter(status=filters.validated_data["status"])
            if "kind" in filters.validated_data:
                queryset = queryset.filter(kind=filters.validated_data["kind"])
            if "user" in filters.validated_data:
                queryset = queryset.filter(membership_id=filters.validated_data["user"])
        return selectors.narrow_cases(queryset, tenant=self.tenant)

    @extend_schema(parameters=[CaseFilterSerializer])
    def list(self, request, *args, **kwargs):
        return super().list(request, *args, **kwargs)

    def _decide(self, request, service):
        case = self.get_object()
        serializer = CaseDecisionSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        result = service(actor=self.membership, case=case, reason=serializer.validated_data["reason"])
        fresh = self.get_queryset().get(pk=result.pk)
        return Response(AbuseCaseSerializer(fresh).data)

    @extend_schema(request=CaseDecisionSerializer, responses=AbuseCaseSerializer)
    @action(detail=True, methods=["post"])
    def reinstate(self, request, *args, **kwargs):
        """Reinstate the user's copilot access (a termination: platform operators only, 403 `operator_required`)."""
        return self._decide(request, services.case_reinstate)

    @extend_schema(request=CaseDecisionSerializer, responses=AbuseCaseSerializer)
    @action(detail=True, methods=["post"])
    def terminate(self, request, *args, **kwargs):
        """Terminate the user's copilot access; answers the new termination case."""
        return self._decide(request, services.case_terminate)

    @extend_schema(request=CaseDecisionSerializer, responses=AbuseCaseSerializer)
    @action(detail=True, methods=["post"])
    def dismiss(self, request, *args, **kwargs):
        """Close the case without changing the access (not for terminations: 409)."""
        return self._decide(request, services.case_dismiss)


class WebhookViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, TenantViewSet):
    """The tenant's webhooks (`admin.limits`): create, change, delete; `test/` queues a test
    event; `deliveries/` is the delivery log (status, latency and attempts of each event)."""

    model = Webhook
    serializer_class = WebhookSerializer
    permissions = {
        "list": Perm.LIMITS,
        "retrieve": Perm.LIMITS,
        "create": Perm.LIMITS,
        "partial_update": Perm.LIMITS,
        "destroy": Perm.LIMITS,
        "test": Perm.LIMITS,
        "deliveries": Perm.LIMITS,
    }
    filter_backends: list = []
    http_method_names = ["get", "post", "patch", "delete", "head", "options"]

    @extend_schema(request=WebhookSerializer, responses={201: WebhookCreatedSerializer})
    def create(self, request, *args, **kwargs):
        serializer = WebhookSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        webhook, secret = webhook_services.webhook_create(actor=self.membership, **serializer.validated_data)
        data = dict(WebhookSerializer(webhook).data)
        data["signing_secret"] = secret
        return Response(data, status=status.HTTP_201_CREATED)

    @extend_schema(request=WebhookSerializer(partial=True), responses=WebhookSerializer)
    def partial_update(self, request, *args, **kwargs):
        webhook = self.get_object()
        serializer = WebhookSerializer(webhook, data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        webhook = webhook_services.webhook_update(actor=self.membership, webhook=webhook, **serializer.validated_data)
        return Response(WebhookSerializer(webhook).data)

    def destroy(self, request, *args, **kwargs):
        webhook_services.webhook_delete(actor=self.membership, webhook=self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(request=None, responses={201: WebhookDeliverySerializer})
    @action(detail=True, methods=["post"])
    def test(self, request, *args, **kwargs):
        """Queue a `webhook.test` event for this webhook (also when it is switched off); answers
        the new delivery, whose outcome shows in `deliveries/`."""
        webhook = self.get_object()
        refuse_body(request)
        delivery = webhook_services.webhook_test_send(actor=self.membership, webhook=webhook)
        return Response(WebhookDeliverySerializer(delivery).data, status=status.HTTP_201_CREATED)

    @extend_schema(responses=WebhookDeliverySerializer(many=True))
    @action(detail=True, methods=["get"])
    def deliveries(self, request, *args, **kwargs):
        """The webhook's deliveries, newest first, each with its attempts."""
        webhook = self.get_object()
        page = self.paginate_queryset(selectors.webhook_deliveries(tenant=self.tenant, webhook=webhook))
        return self.get_paginated_response(WebhookDeliverySerializer(page, many=True).data)
