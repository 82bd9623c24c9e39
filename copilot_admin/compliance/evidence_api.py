"""Evidence API: the signed checkpoints of the tenant's audit chain, the access review at a
moment (JSON or streamed CSV) and the data-exchange record. Read-only, `audit.view`."""

import csv
import io
import json

from django.http import HttpResponse, StreamingHttpResponse
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import mixins
from rest_framework.decorators import action
from rest_framework.exceptions import ValidationError
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response

from copilot_admin.access.base_api import TenantAPIView, TenantViewSet
from copilot_admin.access.models import SecurityRole
from copilot_admin.access.permissions import Perm
from copilot_admin.audit.checkpoints import audit_checkpoints, checkpoints_document
from copilot_admin.compliance.evidence_serializers import (
    AccessReviewForm,
    AccessReviewSerializer,
    CheckpointQuerySerializer,
    CheckpointsDocumentSerializer,
    DataExchangeSerializer,
    ReviewCampaignCreateSerializer,
    ReviewCampaignDetailSerializer,
    ReviewCampaignSerializer,
    ReviewDecisionSerializer,
)
from copilot_admin.compliance.exchange import data_exchange_record
from copilot_admin.compliance.models import ReviewCampaign
from copilot_admin.compliance.review import CSV_COLUMNS, access_review
from copilot_admin.compliance.review_selectors import campaign_items
from copilot_admin.compliance.review_services import (
    campaign_complete,
    campaign_export_start,
    campaign_item_decide,
    campaign_start,
)
from copilot_admin.core.errors import refuse_body


class _JSONOnly:
    def perform_content_negotiation(self, request, force=False):
        # `?format=` names a download's format, not a DRF renderer: answers (and errors) are JSON.
        renderer = JSONRenderer()
        return renderer, renderer.media_type


def checkpoints_for_download(*, tenant, limit: int) -> dict:
    """The newest `limit` checkpoints of the tenant, oldest first, as the file the command reads."""
    newest = list(audit_checkpoints(tenant=tenant)[:limit])
    return checkpoints_document(tenant=tenant, checkpoints=reversed(newest))


class AuditCheckpointsView(_JSONOnly, TenantAPIView):
    """The signed checkpoints of the tenant's audit chain (one per seal), as the file
    `python manage.py audit_verify --checkpoints FILE` checks the chain against. Keep copies
    outside this system: they prove entries removed or a chain rewritten."""

    permissions = {"get": Perm.AUDIT_VIEW}

    @extend_schema(parameters=[CheckpointQuerySerializer], responses=CheckpointsDocumentSerializer)
    def get(self, request, tenant_slug):
        query = CheckpointQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        document = checkpoints_for_download(tenant=self.tenant, limit=query.validated_data["limit"])
        if not query.validated_data["download"]:
            return Response(document)
        response = HttpResponse(json.dumps(document, indent=1), content_type="application/json")
        stamp = timezone.now().strftime("%Y%m%dT%H%M%SZ")
        response["Content-Disposition"] = f'attachment; filename="audit-checkpoints-{self.tenant.slug}-{stamp}.json"'
        return response


def review_moment(query) -> tuple:
    """(at, format) of an access-review request; 400 when malformed."""
    form = AccessReviewForm(query)
    if not form.is_valid():
        errors = form.errors.get_json_data()
        raise ValidationError({name: [error["message"] for error in found] for name, found in errors.items()})
    return form.cleaned_data["at"] or timezone.now(), form.cleaned_data["format"] or "json"


def review_csv_stream(rows):
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    for row in [CSV_COLUMNS, *(row.as_csv() for row in rows)]:
        writer.writerow(row)
        yield buffer.getvalue().encode()
        buffer.seek(0)
        buffer.truncate()


class AccessReviewView(_JSONOnly, TenantAPIView):
    """Who held which role, permissions, companies and copilot access at `at` (default: now),
    rebuilt from the audit log; `format=csv` streams the same rows."""

    permissions = {"get": Perm.AUDIT_VIEW}

    @extend_schema(
        parameters=[
            OpenApiParameter("at", OpenApiTypes.STR, description="ISO 8601 date-time (naive: UTC) or a date (its start)."),
            OpenApiParameter("format", OpenApiTypes.STR, enum=["json", "csv"]),
        ],
        responses={
            (200, "application/json"): AccessReviewSerializer,
            (200, "text/csv"): OpenApiResponse(OpenApiTypes.STR, description="The same rows; UTF-8."),
        },
    )
    def get(self, request, tenant_slug):
        at, fmt = review_moment(request.query_params)
        rows = access_review(tenant=self.tenant, at=at)
        if fmt == "csv":
            response = StreamingHttpResponse(review_csv_stream(rows), content_type="text/csv; charset=utf-8")
            stamp = at.strftime("%Y%m%dT%H%M%SZ")
            response["Content-Disposition"] = f'attachment; filename="access-review-{self.tenant.slug}-{stamp}.csv"'
            return response
        return Response(AccessReviewSerializer({"at": at, "results": [row.as_dict() for row in rows]}).data)


class DataExchangeView(TenantAPIView):
    """What leaves the platform on a copilot call of this tenant, to which processor and
    deployment in which zone, over what, and what is kept: generated from the code."""

    permissions = {"get": Perm.AUDIT_VIEW}

    @extend_schema(responses=DataExchangeSerializer)
    def get(self, request, tenant_slug):
        return Response(DataExchangeSerializer(data_exchange_record(tenant=self.tenant)).data)


class ReviewCampaignViewSet(mixins.ListModelMixin, TenantViewSet):
    """Access review campaigns. The auditor starts one (`POST`) and completes it; the tenant
    administrator decides each member (`decide/`: confirm, or flag with the change); `export/`
    gives the finished review as CSV (recorded)."""

    model = ReviewCampaign
    serializer_class = ReviewCampaignSerializer
    filter_backends: list = []
    permissions = {
        "list": Perm.AUDIT_VIEW, "create": Perm.AUDIT_VIEW, "retrieve": Perm.AUDIT_VIEW,
        "decide": Perm.USERS, "complete": Perm.AUDIT_VIEW, "export": Perm.AUDIT_EXPORT,
    }
    http_method_names = ["get", "post", "head", "options"]

    def narrow_queryset(self, queryset):
        return queryset.select_related("started_by").order_by("-at", "-id")

    def _detail(self, campaign, status=200):
        serializer = ReviewCampaignDetailSerializer(campaign, context={"items": campaign_items(campaign=campaign)})
        return Response(serializer.data, status=status)

    @extend_schema(request=ReviewCampaignCreateSerializer, responses={201: ReviewCampaignDetailSerializer})
    def create(self, request, *args, **kwargs):
        body = ReviewCampaignCreateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        return self._detail(campaign_start(actor=self.membership, name=body.validated_data["name"]), status=201)

    @extend_schema(responses=ReviewCampaignDetailSerializer)
    def retrieve(self, request, *args, **kwargs):
        return self._detail(self.get_object())

    @extend_schema(request=ReviewDecisionSerializer, responses=ReviewCampaignDetailSerializer)
    @action(detail=True, methods=["post"])
    def decide(self, request, *args, **kwargs):
        campaign = self.get_object()
        body = ReviewDecisionSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        item = campaign_items(campaign=campaign).filter(pk=data["item"]).first()
        role = None
        if data["role"] is not None:
            role = SecurityRole.objects.for_tenant(self.tenant).filter(pk=data["role"]).first()
            if role is None:
                raise ValidationError({"role": ["No such role in this tenant."]})
        if item is None:
            raise ValidationError({"item": ["No such member in this review."]})
        campaign_item_decide(actor=self.membership, item=item, decision=data["decision"], note=data["note"],
                             role=role, deactivate=data["deactivate"])
        return self._detail(campaign)

    @extend_schema(request=None, responses=ReviewCampaignDetailSerializer)
    @action(detail=True, methods=["post"])
    def complete(self, request, *args, **kwargs):
        campaign = self.get_object()  # a foreign or missing campaign is 404 before the body is looked at
        refuse_body(request)
        return self._detail(campaign_complete(actor=self.membership, campaign=campaign))

    @extend_schema(responses={(200, "text/csv"): OpenApiResponse(OpenApiTypes.STR, description="One row per member.")})
    @action(detail=True, methods=["get"])
    def export(self, request, *args, **kwargs):
        filename, stream = campaign_export_start(actor=self.membership, campaign=self.get_object())
        response = StreamingHttpResponse(stream, content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = f'attachment; filename="{filename}"'
        return response
