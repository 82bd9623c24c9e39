"""API tokens: log in with e-mail and password for a hashed, expiring token; DELETE revokes it."""

from axes.exceptions import AxesBackendPermissionDenied
from django.contrib.auth import authenticate
from django.db import transaction
from django.utils import timezone
from drf_spectacular.utils import extend_schema
from knox.models import AuthToken
from knox.settings import knox_settings
from rest_framework import serializers, status
from rest_framework.permissions import AllowAny, IsAuthenticated
from rest_framework.response import Response
from rest_framework.views import APIView

from copilot_admin.access.tokens import CachedTokenAuthentication
from copilot_admin.audit.services import audit_event_record_for_user_tenants
from copilot_admin.core.errors import ApplicationError
from copilot_admin.core.schema import error_response
from copilot_admin.core.second_factor import password_verified
from copilot_admin.directory.login_guard import lockout_response


class TokenRequestSerializer(serializers.Serializer):
    email = serializers.EmailField(max_length=254)
    password = serializers.CharField(max_length=256, trim_whitespace=False, style={"input_type": "password"})
    otp = serializers.CharField(
        max_length=64, required=False, allow_blank=True,
        help_text="The second factor of an account with MFA: a code of its authenticator app, or a recovery code.",
    )


class TokenResponseSerializer(serializers.Serializer):
    token = serializers.CharField()
    expires = serializers.DateTimeField()


class AuthTokenView(APIView):
    """POST: a new token for valid credentials (failed attempts lock the account from that address
    and slow the account down from every address: see login_guard); beyond the per-user token
    limit the oldest live token is revoked. DELETE: revoke the token used for the request."""

    authentication_classes = [CachedTokenAuthentication]
    permission_required = "authenticated"

    def perform_authentication(self, request):
        # Logging in never depends on a token the client may still carry (stale or expired).
        if request.method != "POST":
            super().perform_authentication(request)

    def get_permissions(self):
        return [AllowAny()] if self.request.method == "POST" else [IsAuthenticated()]

    @extend_schema(
        request=TokenRequestSerializer,
        responses={
            201: TokenResponseSerializer,
            401: error_response(
                401,
                "`invalid_credentials`: wrong e-mail or password, or an inactive account; `mfa_required`: the "
                "account needs its second factor (`otp`); `invalid_otp`: the second factor is wrong or used.",
            ),
            429: error_response(
                429, "`locked_out`, `login_throttled`: too many failed logins or second factors (see Retry-After)."
            ),
        },
        auth=[],
    )
    def post(self, request):
        serializer = TokenRequestSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        try:
            user = authenticate(
                request._request, email=serializer.validated_data["email"], password=serializer.validated_data["password"]
            )
        except AxesBackendPermissionDenied:
            user = None
        if getattr(request._request, "axes_locked_out", False):
            # 429 locked_out (this account from this address) or login_throttled (this account), with Retry-After.
            return lockout_response(request._request)
        if user is None or not user.is_active:
            raise ApplicationError(
                "Invalid e-mail or password.", code="invalid_credentials", status_code=status.HTTP_401_UNAUTHORIZED
            )
        # The second factor, when the account has one (identity's MFA; raises SecondFactorRefused).
        password_verified.send(
            sender=AuthTokenView, request=request._request, user=user, otp=serializer.validated_data.get("otp") or None
        )
        with transaction.atomic():  # a token exists only with its audit entry
            _make_room_for_a_token(request, user=user)
            instance, token = AuthToken.objects.create(user=user)
            _audit_token(request, user=user, instance=instance, action="auth.token_create")
        return Response(TokenResponseSerializer({"token": token, "expires": instance.expiry}).data, status=201)

    @extend_schema(request=None, responses={204: None})
    def delete(self, request):
        with transaction.atomic():
            _audit_token(request, user=request.user, instance=request.auth, action="auth.token_revoke")
            request.auth.delete()
        return Response(status=status.HTTP_204_NO_CONTENT)


def _make_room_for_a_token(request, *, user) -> None:
    """Knox's per-user limit (REST_KNOX TOKEN_LIMIT_PER_USER): a new token beyond it revokes
    the oldest live ones (recorded like any revocation), so a user never holds more. The
    user's row is locked so that concurrent logins of one user count one after another."""
    limit = knox_settings.TOKEN_LIMIT_PER_USER
    if limit is None:
        return
    type(user).objects.select_for_update().filter(pk=user.pk).first()
    now = timezone.now()
    AuthToken.objects.filter(user=user, expiry__lt=now).delete()
    live = list(AuthToken.objects.filter(user=user).order_by("-created", "-pk"))
    for instance in live[max(limit - 1, 0):]:
        _audit_token(request, user=user, instance=instance, action="auth.token_revoke", reason="token_limit")
        instance.delete()


def _audit_token(request, *, user, instance, action: str, reason: str | None = None) -> None:
    """Token creation and revocation are security events: recorded with the token's key
    (its public identifier, never the secret) in the user's tenants' audit logs."""
    audit_event_record_for_user_tenants(
        user=user, actor=user, action=action, object_type="token", object_id=instance.token_key,
        object_repr=f"API token {instance.token_key}", request=request,
        metadata={"expires": instance.expiry.isoformat() if instance.expiry else None,
                  **({"reason": reason} if reason else {})},
    )
