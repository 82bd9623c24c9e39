"""`POST /api/v1/tenants/<slug>/copilot/<feature>/`: the copilot call over the REST API.

The view is async: under ASGI (the Procfile's uvicorn) a call waiting for Azure OpenAI holds
no worker thread and no database connection; its database work (token authentication, the
access chain, recording) runs in short hops on a bounded pool (`services.run_orm`). Under
WSGI and Django's test client the same hops run in the request's own thread.

Each feature is its own route and view class (`copilot-summarize`, ...), made from the
feature's declaration (`feature_view`), so that each declares its grant in the policy table and
documents its own answer. The declared permission is
enforced by the service, at its place in the contract's access chain (after entitlement and
the tenant's switches), not up front by the base class.
"""

from __future__ import annotations

import inspect

from django.core.handlers.asgi import ASGIRequest
from django.http import HttpResponse
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import permissions as drf_permissions
from rest_framework import status
from rest_framework.response import Response
from rest_framework.views import APIView

from copilot_admin.access.base_api import AuditedAPIMixin, TenantPermission
from copilot_admin.access.permissions import ANY_MEMBER, Perm
from copilot_admin.copilot import services
from copilot_admin.copilot.features import Feature
from copilot_admin.copilot.serializers import (
    CopilotErrorSerializer,
    CopilotRequestSerializer,
    CopilotSettingsSerializer,
)
from copilot_admin.copilot.settings_services import tenant_copilot_settings_update
from copilot_admin.core.client_ip import client_ip
from copilot_admin.core.context import Channel, request_ids, scope_enter, scope_exit
from copilot_admin.core.parsers import DepthLimitedJSONParser
from tenants.selectors import membership_resolve
from tenants.sessions import credential_issued_at

_ERRORS = {
    400: "`invalid_payload` (or `parse_error`, `too_deep`): the body is malformed; nothing was sent.",
    401: "`not_authenticated` / `authentication_failed`.",
    403: "`tenant_suspended`, `not_entitled`, `copilot_disabled`, `feature_disabled`, `permission_denied`, "
    "`access_suspended`, `access_terminated`, `company_out_of_scope` (checked in this order).",
    404: "`not_found`: no such tenant, or the caller is not an active member of it.",
    413: "`payload_too_large`: the ticket text exceeds the input limits; nothing was sent.",
    415: "`unsupported_media_type`: send application/json.",
    422: "`content_filtered`: Azure's content filter blocked the `stage` (prompt or completion); `categories`.",
    429: "`rate_limited`: a usage limit, or the zone's deployments, refused; see the Retry-After header.",
    502: "`upstream_error`: Azure OpenAI answered with something unusable.",
    503: "`no_deployment_in_zone` or `upstream_unavailable`.",
    504: "`upstream_timeout`.",
}


class CopilotCallView(APIView):
    """Run one copilot feature on a ticket. Base of one view class per feature."""

    feature: Feature
    permissions: dict = {}
    permission_classes = [drf_permissions.IsAuthenticated]
    parser_classes = [DepthLimitedJSONParser]
    http_method_names = ["post", "options"]

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if cls.permissions.get("post") != cls.feature.permission:
            raise TypeError(f"{cls.__name__} must declare permissions = {{'post': <the feature's grant>}}.")

    async def dispatch(self, request, *args, **kwargs):
        """DRF's dispatch, with the blocking steps (authentication, the service's database
        work) moved off the event loop."""
        self.args = args
        self.kwargs = kwargs
        # Under ASGI nothing holds a thread for this request; elsewhere its thread owns the connection.
        self.caller_thread = not isinstance(request, ASGIRequest)
        request = self.initialize_request(request, *args, **kwargs)
        self.request = request
        self.headers = self.default_response_headers
        ids = request_ids(request)
        self.origin = services.CallOrigin(remote_addr=client_ip(request) or "", **ids)
        scope = scope_enter(channel=Channel.API, **ids)
        try:
            await services.run_orm(self.initial, request, *args, caller_thread=self.caller_thread, **kwargs)
            if request.method.lower() in self.http_method_names:
                handler = getattr(self, request.method.lower(), self.http_method_not_allowed)
            else:
                handler = self.http_method_not_allowed
            response = handler(request, *args, **kwargs)
            if inspect.isawaitable(response):
                response = await response
        except Exception as exc:  # noqa: BLE001 - DRF's own contract: every exception becomes a response
            response = self.handle_exception(exc)
        finally:
            scope_exit(scope)
        response = self.finalize_response(request, response, *args, **kwargs)
        # Rendered here (CPU only) and handed over as a plain response: Django would render a
        # template response in a thread hop of its own.
        response.render()
        self.response = HttpResponse(response.content, status=response.status_code, headers=dict(response.items()))
        return self.response

    def handle_exception(self, exc):
        if isinstance(exc, services.CopilotError):
            response = Response(exc.body(), status=exc.status_code)
            if exc.retry_after is not None:
                response["Retry-After"] = str(exc.retry_after)
            return response
        return super().handle_exception(exc)

    async def post(self, request, tenant_slug: str):
        body = request.data

        def resolve():
            # Step 1 of the access chain, with the request's credential: an accepted, active
            # membership, and a credential issued after the membership's last deactivation.
            return membership_resolve(user=request.user, tenant_slug=tenant_slug, issued_at=credential_issued_at(request))

        membership = await services.run_orm(resolve, caller_thread=self.caller_thread)
        answer = await services.acopilot_invoke(
            user=request.user, membership=membership, feature=self.feature, body=body,
            origin=self.origin, caller_thread=self.caller_thread,
        )
        return Response(answer.as_response())


def _schema(feature: Feature):
    return extend_schema(
        operation_id=f"copilot_{feature.slug.replace('-', '_')}",
        summary=feature.label,
        tags=["copilot"],
        request=CopilotRequestSerializer,
        responses={
            200: feature.result_serializer,
            **{status: OpenApiResponse(CopilotErrorSerializer, description=text) for status, text in _ERRORS.items()},
        },
    )


def feature_view(feature: Feature) -> type[CopilotCallView]:
    """The endpoint class of one feature (`TimeEntryView` for `time-entry`): it declares the
    feature's grant and documents the feature's answer; its docstring is the feature's description."""

    @_schema(feature)
    async def post(self, request, tenant_slug: str):
        return await CopilotCallView.post(self, request, tenant_slug)

    name = "".join(part.title() for part in feature.slug.split("-")) + "View"
    return type(name, (CopilotCallView,), {
        "__doc__": feature.description, "__module__": __name__, "__qualname__": name,
        "feature": feature, "permissions": {"post": feature.permission}, "post": post,
    })


class CopilotSettingsView(AuditedAPIMixin, APIView):
    """The tenant's copilot switches with its plan entitlement and data zone (read-only)."""

    permission_classes = [TenantPermission]
    permissions = {"get": ANY_MEMBER, "patch": Perm.COPILOT_SETTINGS}

    def permission_for_action(self):
        return self.permissions.get(self.request.method.lower())

    @extend_schema(responses=CopilotSettingsSerializer)
    def get(self, request, tenant_slug):
        return Response(CopilotSettingsSerializer(self.tenant).data)

    @extend_schema(request=CopilotSettingsSerializer, responses=CopilotSettingsSerializer)
    def patch(self, request, tenant_slug):
        serializer = CopilotSettingsSerializer(data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        tenant = tenant_copilot_settings_update(actor=self.membership, **serializer.validated_data)
        return Response(CopilotSettingsSerializer(tenant).data, status=status.HTTP_200_OK)


