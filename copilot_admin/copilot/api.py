"""`POST /api/v1/tenants/<slug>/copilot/<feature>/`: the copilot call over the REST API.

The view is async: under ASGI (the Procfile's uvicorn) a call waiting for Azure OpenAI holds
no worker thread and no database connection; its database work (token authentication, the
access chain, recording) runs in short hops on a bounded pool (`services.run_orm`). Under
WSGI and Django's test client the same hops run in the request's own thread.

Each feature is its own route and view class (`copilot-summarize`, ...), made from the
feature's declaration (`feature_view`): one `CopilotCallView` parameterised by its feature, so
that each declares its grant in the policy table and documents its own answer. The base class
(`TenantAsyncAPIView`) lets the request in through the resolver the other API views use (the
tenant and membership: 404; an operator's access recorded); the declared grant is enforced by
the service, at its place in the contract's access chain (after entitlement and the tenant's
switches), not up front.
"""

from __future__ import annotations

from django.db import transaction
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.response import Response

from copilot_admin.access.base_api import TenantAPIView, TenantAsyncAPIView
from copilot_admin.access.credentials import DelegatedCredential
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
from copilot_admin.core.context import request_ids
from copilot_admin.core.parsers import DepthLimitedJSONParser
from copilot_admin.identity.mfa import mfa_tenant_required_set

_ERRORS = {
    400: "`invalid_payload` (or `parse_error`, `too_deep`): the body is malformed; nothing was sent. "
    "`company_inactive`: the client company is deactivated; nothing was sent.",
    401: "`not_authenticated` / `authentication_failed`.",
    403: "`tenant_suspended`, `not_entitled`, `copilot_disabled`, `feature_disabled`, `permission_denied`, "
    "`access_suspended`, `access_terminated`, `company_out_of_scope` (checked in this order). With an "
    "integration key: `address_not_allowed`; `permission_denied` also when the key's scopes do not allow "
    "the call or `acting_user` is not an active member.",
    404: "`not_found`: no such tenant, or the caller is not an active member of it (or the integration "
    "key belongs to another tenant).",
    413: "`payload_too_large`: the ticket text exceeds the input limits; nothing was sent.",
    415: "`unsupported_media_type`: send application/json.",
    422: "`content_filtered`: Azure's content filter blocked the `stage` (prompt or completion); `categories`.",
    429: "`rate_limited`: a usage limit, the integration key's own rate, or the zone's deployments, refused; "
    "see the Retry-After header.",
    502: "`upstream_error`: Azure OpenAI answered with something unusable.",
    503: "`no_deployment_in_zone` or `upstream_unavailable`.",
    504: "`upstream_timeout`.",
}


class CopilotCallView(TenantAsyncAPIView):
    """Run one copilot feature on a ticket: the base of one view class per feature, each
    naming its `feature`; the permission it declares is the feature's grant (derived, never
    written twice)."""

    base_class = True
    feature: Feature | None = None
    parser_classes = [DepthLimitedJSONParser]
    http_method_names = ["post", "options"]
    # The call's access chain (services.copilot_admit) checks the tenant's state and the grant
    # in the contract's order and records each refusal as a `copilot.call`; the base class
    # resolves the tenant and membership (404) and records an operator's access.
    access_checked_by_service = True

    def __init_subclass__(cls, **kwargs):
        feature = cls.__dict__.get("feature")
        if feature is not None:
            cls.permissions = {"post": feature.permission}
        super().__init_subclass__(**kwargs)

    def read_plan(self, user_id: int):
        # With the membership: the access chain's reads (services.copilot_call_reads).
        slug = self.kwargs["tenant_slug"]
        return [*super().read_plan(user_id), *services.copilot_call_reads(tenant_slug=slug, user_id=user_id)]

    async def run_blocking(self, fn, /, *args, **kwargs):
        # The copilot's bounded pool: a call waiting for Azure holds no thread and no connection.
        # The hop admits the call (prepare): a client going away meanwhile abandons it.
        return await services.run_orm_to_end(fn, *args, caller_thread=self.caller_thread, admitted_by=self, **kwargs)

    def prepare(self) -> None:
        # The access chain and the limits' reservation, in the hop that authenticated the
        # request: one thread hop before the upstream and one after it.
        request = self.request
        self.admitted = None
        if request.method != "POST":
            return
        # A PSA server's integration key acts for the member the resolver put in request.user.
        credential = request.auth if isinstance(request.auth, DelegatedCredential) else None
        origin = services.CallOrigin(
            remote_addr=client_ip(request) or "", integration_key=credential.public_id if credential else "",
            **request_ids(request),
        )
        self.admitted = services.copilot_admit(
            user=request.user, membership=self.membership, feature=self.feature, body=request.data, origin=origin,
        )

    def handle_exception(self, exc):
        if isinstance(exc, services.CopilotError):
            response = Response(exc.body(), status=exc.status_code)
            if exc.retry_after is not None:
                response["Retry-After"] = str(exc.retry_after)
            return response
        return super().handle_exception(exc)

    async def post(self, request, tenant_slug: str):
        answer = await services.acopilot_send(self.admitted, caller_thread=self.caller_thread)
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
        "feature": feature, "post": post,
    })


class CopilotSettingsView(TenantAPIView):
    """The tenant's copilot switches with its plan entitlement and data zone (read-only)."""

    permissions = {"get": ANY_MEMBER, "patch": Perm.COPILOT_SETTINGS}

    @extend_schema(responses=CopilotSettingsSerializer)
    def get(self, request, tenant_slug):
        return Response(CopilotSettingsSerializer(self.tenant).data)

    @extend_schema(request=CopilotSettingsSerializer, responses=CopilotSettingsSerializer)
    def patch(self, request, tenant_slug):
        serializer = CopilotSettingsSerializer(data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        data = dict(serializer.validated_data)
        mfa_required = data.pop("mfa_required", None)
        with transaction.atomic():
            tenant = tenant_copilot_settings_update(actor=self.membership, **data)
            if mfa_required is not None:  # identity's own service, with its own permission (admin.users)
                mfa_tenant_required_set(actor=self.membership, mfa_required=mfa_required, request=request)
        return Response(CopilotSettingsSerializer(tenant).data, status=status.HTTP_200_OK)


