"""Forced enrolment: a login that must enrol a second factor (tenant `mfa_required`, operators in
production) reaches only the MFA pages, logout and static files until it has one. Requests
without a session cookie (API clients with tokens) pass without touching the session store."""

from asgiref.sync import sync_to_async
from django.conf import settings
from django.http import JsonResponse
from django.shortcuts import redirect

from copilot_admin.core.errors import error_body
from copilot_admin.core.middleware import SyncAndAsyncMiddleware
from copilot_admin.identity.mfa import mfa_has_factor

ENROL_SESSION_KEY = "mfa_enrolment_required"
_ALLOWED_PREFIXES = ("/account/mfa/", "/logout/", "/login/", "/static/")


class MfaEnrolmentMiddleware(SyncAndAsyncMiddleware):
    """A login that must enrol a second factor reaches only the MFA pages until it has one."""

    def __call__(self, request):
        if self.is_async:
            return self._acall(request)
        return self._refusal(request) or self.get_response(request)

    async def _acall(self, request):
        if self._may_apply(request):
            refusal = await sync_to_async(self._refusal)(request)
            if refusal is not None:
                return refusal
        return await self.get_response(request)

    @staticmethod
    def _may_apply(request) -> bool:
        return settings.SESSION_COOKIE_NAME in request.COOKIES and not request.path.startswith(_ALLOWED_PREFIXES)

    def _refusal(self, request):
        if not self._may_apply(request):
            return None
        session = getattr(request, "session", None)
        if session is None or not session.get(ENROL_SESSION_KEY):
            return None
        user = request.user
        if not user.is_authenticated or mfa_has_factor(user=user):
            del session[ENROL_SESSION_KEY]
            return None
        if request.path.startswith("/api/"):
            return JsonResponse(
                error_body("mfa_enrolment_required", "Enrol a second factor at /account/mfa/ first."), status=403
            )
        return redirect("mfa:manage")
