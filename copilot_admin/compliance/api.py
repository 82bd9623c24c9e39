"""Audit log API: the filtered list (keyset pages) and the streamed export. Read-only."""

from django.http import StreamingHttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import mixins
from rest_framework.decorators import action
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.pagination import CursorPagination
from rest_framework.renderers import JSONRenderer

from copilot_admin.access.base_api import TenantViewSet
from copilot_admin.access.permissions import Perm
from copilot_admin.audit.export import ExportFormat
from copilot_admin.audit.models import AuditEntry
from copilot_admin.audit.selectors import PAGE_SIZE, audit_entries_filter
from copilot_admin.compliance.forms import AuditFilterForm
from copilot_admin.compliance.serializers import AuditEntryDetailSerializer, AuditEntrySerializer
from copilot_admin.compliance.services import audit_export_start
from copilot_admin.core.pagination import query_int
from copilot_admin.core.schema import error_response

FILTER_PARAMETERS = [
    OpenApiParameter("since", OpenApiTypes.STR, description="From this UTC date or ISO 8601 date-time (inclusive)."),
    OpenApiParameter("until", OpenApiTypes.STR, description="Before this ISO 8601 date-time; a date includes that day."),
    OpenApiParameter("actor", OpenApiTypes.STR, description="User id, `system`, or (part of) an e-mail."),
    OpenApiParameter("action", OpenApiTypes.STR, description="An action (`membership.update`) or a prefix (`auth`)."),
    OpenApiParameter("object_type", OpenApiTypes.STR),
    OpenApiParameter("object_id", OpenApiTypes.STR),
    OpenApiParameter("outcome", OpenApiTypes.STR, enum=["success", "denied", "failure"]),
    OpenApiParameter("q", OpenApiTypes.STR, description="Free text over non-content fields."),
    OpenApiParameter("correlation_id", OpenApiTypes.STR, description="Entries of one request."),
    OpenApiParameter("user", OpenApiTypes.INT, description="Changes to this user (a user id of `users/`)."),
    OpenApiParameter("role", OpenApiTypes.INT, description="Changes to this role (a role id)."),
    OpenApiParameter("company", OpenApiTypes.INT, description="Changes to this client company (a company id)."),
]

ERROR_RESPONSES = {
    400: error_response(400, "A filter (or the format) is malformed: `fields` says which."),
    401: error_response(401),
    403: error_response(403, "The security role does not allow it (recorded), or the tenant is suspended."),
    404: error_response(404, "No such tenant for the caller, or a stale cursor."),
}


class AuditCursorPagination(CursorPagination):
    """Keyset pages, newest first: fast at any depth, no counting."""

    ordering = "-id"
    page_size = PAGE_SIZE
    page_size_query_param = "page_size"
    max_page_size = 500

    def get_page_size(self, request):
        query_int(request, self.page_size_query_param, minimum=1, maximum=self.max_page_size)
        return super().get_page_size(request)

    def get_schema_operation_parameters(self, view):
        parameters = super().get_schema_operation_parameters(view)
        for parameter in parameters:
            if parameter["name"] == self.page_size_query_param:
                parameter["schema"].update(minimum=1, maximum=self.max_page_size)
        return parameters

    def decode_cursor(self, request):
        cursor = super().decode_cursor(request)
        # The position is an entry id: anything else is a forged cursor, not a server error.
        if cursor is not None and cursor.position is not None and not str(cursor.position).isdigit():
            raise NotFound(self.invalid_cursor_message)
        return cursor


# Filters the schema restricts to a list of values: an empty one (`?outcome=`) is not one of them.
_CHOICE_FILTERS = tuple(parameter.name for parameter in FILTER_PARAMETERS if parameter.enum)


def _filters(request) -> dict:
    blank = {name: ["May not be empty."] for name in _CHOICE_FILTERS if request.query_params.get(name) == ""}
    if blank:
        raise ValidationError(blank)
    form = AuditFilterForm(request.query_params)
    if not form.is_valid():
        errors = form.errors.get_json_data()
        raise ValidationError({field: [error["message"] for error in found] for field, found in errors.items()})
    return form.filters()


class AuditEntryViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, TenantViewSet):
    """The tenant's audit log. `<id>/` is one entry with its changes readable; `export/`
    streams the same filters as CSV or JSON Lines."""

    model = AuditEntry
    pagination_class = AuditCursorPagination
    renderer_classes = [JSONRenderer]
    filter_backends = []
    permissions = {"list": Perm.AUDIT_VIEW, "retrieve": Perm.AUDIT_VIEW, "export": Perm.AUDIT_EXPORT}
    http_method_names = ["get", "head", "options"]

    def perform_content_negotiation(self, request, force=False):
        # `?format=` names the export's format, not a DRF renderer: answers (and errors) are JSON.
        renderer = JSONRenderer()
        return renderer, renderer.media_type

    def get_serializer_class(self):
        return AuditEntryDetailSerializer if self.action == "retrieve" else AuditEntrySerializer

    def narrow_queryset(self, queryset):
        if self.action == "retrieve":
            return queryset
        return audit_entries_filter(queryset, filters=_filters(self.request))

    @extend_schema(responses={200: AuditEntryDetailSerializer, 401: ERROR_RESPONSES[401],
                              403: ERROR_RESPONSES[403], 404: error_response(404, "No such entry in this tenant.")})
    def retrieve(self, request, *args, **kwargs):
        return super().retrieve(request, *args, **kwargs)

    @extend_schema(parameters=FILTER_PARAMETERS, responses={200: AuditEntrySerializer(many=True), **ERROR_RESPONSES})
    def list(self, request, *args, **kwargs):
        return super().list(request, *args, **kwargs)

    @extend_schema(
        parameters=[*FILTER_PARAMETERS, OpenApiParameter("format", OpenApiTypes.STR, enum=[*ExportFormat.CHOICES])],
        responses={
            (200, "text/csv"): OpenApiResponse(OpenApiTypes.STR, description="UTC times; each entry's chain hashes."),
            (200, "application/x-ndjson"): OpenApiResponse(
                OpenApiTypes.STR, description="One entry per line with every hashed field (verifiable offline)."),
            **{(status, "application/json"): response for status, response in ERROR_RESPONSES.items()},
        },
    )
    @action(detail=False, methods=["get"], url_path="export")
    def export(self, request, *args, **kwargs):
        fmt = request.query_params.get("format", ExportFormat.CSV)
        if fmt not in ExportFormat.CHOICES:
            raise ValidationError({"format": [f"One of: {', '.join(ExportFormat.CHOICES)}."]})
        filename, content_type, stream = audit_export_start(
            actor=self.membership, filters=_filters(request), fmt=fmt, request=request,
        )
        response = StreamingHttpResponse(stream, content_type=content_type)
        response["Content-Disposition"] = f'attachment; filename="{filename}"'
        response["Cache-Control"] = "no-store"
        return response
