"""Evidence API: the signed checkpoints of the tenant's audit chain, the access review at a
moment (JSON or streamed CSV) and the data-exchange record. Read-only, `audit.view`."""

import csv
import io
import json

from django.http import HttpResponse, StreamingHttpResponse
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework.exceptions import ValidationError
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response

from copilot_admin.access.base_api import TenantAPIView
from copilot_admin.access.permissions import Perm
from copilot_admin.audit.checkpoints import audit_checkpoints, checkpoints_document
from copilot_admin.compliance.evidence_serializers import (
    AccessReviewForm,
    AccessReviewSerializer,
    CheckpointQuerySerializer,
    CheckpointsDocumentSerializer,
    DataExchangeSerializer,
)
from copilot_admin.compliance.exchange import data_exchange_record
from copilot_admin.compliance.review import CSV_COLUMNS, access_review


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
