"""MFA pages: the second step of a login, the user's own factors (add an authenticator app or a
security key, remove one, new recovery codes) behind a recent password, and the login view
that keeps a user with a factor pending instead of logging it in.

The session holds, for a pending login, only the user's id, the backend, the time the password
was checked and where to go next; it is authenticated (`login()`) only after the second factor.
"""

import json
import time

from django import forms
from django.conf import settings
from django.contrib import messages
from django.contrib.auth import BACKEND_SESSION_KEY, get_user_model, login
from django.contrib.auth import views as auth_views
from django.contrib.auth.mixins import LoginRequiredMixin
from django.http import HttpResponseRedirect, JsonResponse
from django.shortcuts import redirect, render, resolve_url
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views import View
from django.views.generic import TemplateView

from copilot_admin.core.errors import ApplicationError, error_body
from copilot_admin.core.forms import StyledFormMixin
from copilot_admin.core.second_factor import SecondFactorRefused
from copilot_admin.identity import mfa
from copilot_admin.identity.mfa_middleware import ENROL_SESSION_KEY

PENDING_KEY = "mfa_pending"
REAUTH_KEY = "mfa_reauth_at"
TOTP_ENROL_KEY = "mfa_totp_enrolment"


def _mark_reauthenticated(request) -> None:
    request.session[REAUTH_KEY] = time.time()


def mfa_reauthenticated_recently(request) -> bool:
    """Whether the user typed its password within MFA_REAUTH_SECONDS (login or re-authentication)."""
    at = request.session.get(REAUTH_KEY)
    return isinstance(at, (int, float)) and 0 <= time.time() - at <= settings.MFA_REAUTH_SECONDS


def _safe_next(request, value: str | None) -> str:
    if value and url_has_allowed_host_and_scheme(
        value, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return value
    return resolve_url(settings.LOGIN_REDIRECT_URL)


def _complete_login(request, user, backend: str, next_url: str):
    """Authenticate the session (the only place a login with MFA becomes one) and go on;
    a user that must enrol is held on the enrolment pages."""
    login(request, user, backend=backend)
    _mark_reauthenticated(request)
    if mfa.mfa_enrolment_missing(user=user):
        request.session[ENROL_SESSION_KEY] = True
        messages.warning(request, "Your account needs a second factor: set one up before you continue.")
        return redirect("mfa:manage")
    return HttpResponseRedirect(_safe_next(request, next_url))


class MfaLoginView(auth_views.LoginView):
    """The password step: a user without a factor is logged in (and held on the enrolment pages
    when it must enrol); a user with one is only marked pending and sent to the second step."""

    redirect_authenticated_user = True

    def form_valid(self, form):
        user = form.get_user()
        backend = getattr(user, "backend", None) or self.request.session.get(BACKEND_SESSION_KEY)
        if not mfa.mfa_has_factor(user=user):
            return _complete_login(self.request, user, backend, self.get_redirect_url())
        self.request.session.cycle_key()
        self.request.session[PENDING_KEY] = {
            "user": user.pk,
            "backend": backend,
            "at": time.time(),
            "next": self.get_redirect_url(),
        }
        return redirect("mfa:login_verify")


class MfaCodeForm(StyledFormMixin, forms.Form):
    code = forms.CharField(
        max_length=64,
        label="Code",
        strip=True,
        help_text="The 6-digit code of your authenticator app, or one of your recovery codes.",
        widget=forms.TextInput(attrs={"autocomplete": "one-time-code", "autofocus": True}),
    )


def _pending_user(request):
    pending = request.session.get(PENDING_KEY)
    if not isinstance(pending, dict) or time.time() - pending.get("at", 0) > settings.MFA_PENDING_SECONDS:
        request.session.pop(PENDING_KEY, None)
        return None, None
    user = get_user_model().objects.filter(pk=pending.get("user"), is_active=True).first()
    return user, pending


def _throttled_page(request, exc: SecondFactorRefused):
    response = render(
        request,
        "registration/locked_out.html",
        {"code": "login_throttled", "message": exc.message, "wait": f"{exc.retry_after} seconds"},
        status=429,
    )
    response["Retry-After"] = str(exc.retry_after)
    return response


class MfaLoginVerifyView(View):
    """The second step of a login: an authenticator code, a recovery code or a security key."""

    permission_required = "public"
    template_name = "identity/mfa_login_verify.html"

    def _render(self, request, user, form, status=200):
        return render(
            request,
            self.template_name,
            {
                "form": form,
                "has_security_key": mfa.mfa_security_keys(user=user).exists(),
                "has_totp": mfa.mfa_totp_devices(user=user).exists(),
            },
            status=status,
        )

    def get(self, request):
        user, _pending = _pending_user(request)
        if user is None:
            return redirect("login")
        return self._render(request, user, MfaCodeForm())

    def post(self, request):
        user, pending = _pending_user(request)
        if user is None:
            return redirect("login")
        form = MfaCodeForm(request.POST)
        if not form.is_valid():
            return self._render(request, user, form, status=400)
        try:
            mfa.mfa_verify_code(user=user, code=form.cleaned_data["code"], request=request)
        except SecondFactorRefused as exc:
            if exc.retry_after:
                return _throttled_page(request, exc)
            form.add_error("code", exc.message)
            return self._render(request, user, form, status=401)
        del request.session[PENDING_KEY]
        return _complete_login(request, user, pending["backend"], pending.get("next"))


def _json_body(request) -> dict:
    try:
        body = json.loads(request.body or b"{}")
    except (ValueError, UnicodeDecodeError):
        body = None
    if not isinstance(body, dict):
        raise ApplicationError("The body must be a JSON object.", code="parse_error")
    return body


def _json_error(exc: ApplicationError):
    response = JsonResponse(error_body(exc.code, exc.message), status=exc.status_code)
    if getattr(exc, "retry_after", None):
        response["Retry-After"] = str(exc.retry_after)
    return response


class MfaLoginSecurityKeyOptionsView(View):
    """POST: the WebAuthn request options for the pending login's security keys (JSON)."""

    permission_required = "public"

    def post(self, request):
        user, _pending = _pending_user(request)
        if user is None:
            return JsonResponse(error_body("not_authenticated", "Log in with your password first."), status=401)
        return JsonResponse(json.loads(mfa.mfa_security_key_authenticate_begin(user=user, request=request)))


class MfaLoginSecurityKeyVerifyView(View):
    """POST: the browser's assertion (JSON); logs the pending user in and answers where to go."""

    permission_required = "public"

    def post(self, request):
        user, pending = _pending_user(request)
        if user is None:
            return JsonResponse(error_body("not_authenticated", "Log in with your password first."), status=401)
        try:
            mfa.mfa_security_key_authenticate_finish(user=user, request=request, credential=_json_body(request))
        except ApplicationError as exc:
            return _json_error(exc)
        del request.session[PENDING_KEY]
        response = _complete_login(request, user, pending["backend"], pending.get("next"))
        return JsonResponse({"redirect": response.url})


# -- the user's own factors ------------------------------------------------------------------------


class _OwnAccountMixin(LoginRequiredMixin):
    permission_required = "authenticated"


class _ReauthRequiredMixin(_OwnAccountMixin):
    """Adding or removing a factor needs a password typed within MFA_REAUTH_SECONDS."""

    def dispatch(self, request, *args, **kwargs):
        if request.user.is_authenticated and not mfa_reauthenticated_recently(request):
            if request.content_type == "application/json":
                return JsonResponse(error_body("reauthentication_required", "Confirm your password first."), status=403)
            return redirect(f"{reverse('mfa:reauth')}?next={request.path}")
        return super().dispatch(request, *args, **kwargs)


class MfaManageView(_OwnAccountMixin, TemplateView):
    """The user's second factors: list, add, remove, new recovery codes."""

    template_name = "identity/mfa_manage.html"

    def get_context_data(self, **kwargs):
        user = self.request.user
        return super().get_context_data(
            totp_devices=mfa.mfa_totp_devices(user=user),
            security_keys=mfa.mfa_security_keys(user=user),
            recovery_codes_left=mfa.mfa_recovery_codes_left(user=user),
            has_factor=mfa.mfa_has_factor(user=user),
            required=mfa.mfa_enrolment_required(user=user),
            reauthenticated=mfa_reauthenticated_recently(self.request),
            **kwargs,
        )


class MfaReauthForm(StyledFormMixin, forms.Form):
    password = forms.CharField(
        label="Your password",
        strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "current-password", "autofocus": True}),
    )


class MfaReauthView(_OwnAccountMixin, TemplateView):
    """Confirm the password before changing factors (it counts for MFA_REAUTH_SECONDS). Wrong
    passwords count against the account like failed second factors."""

    template_name = "identity/mfa_reauth.html"

    def get_context_data(self, **kwargs):
        kwargs.setdefault("form", MfaReauthForm())
        return super().get_context_data(next=self.request.GET.get("next", ""), **kwargs)

    def post(self, request):
        form = MfaReauthForm(request.POST)
        try:
            mfa.mfa_throttle_check(user=request.user)
        except SecondFactorRefused as exc:
            return _throttled_page(request, exc)
        if form.is_valid() and request.user.check_password(form.cleaned_data["password"]):
            _mark_reauthenticated(request)
            return HttpResponseRedirect(_safe_next(request, request.POST.get("next") or reverse("mfa:manage")))
        if form.is_valid():
            mfa.mfa_reauth_failed(user=request.user, request=request)
            form.add_error("password", "That is not your password.")
        return self.render_to_response(self.get_context_data(form=form), status=400)


class MfaTotpEnrolView(_ReauthRequiredMixin, TemplateView):
    """GET: a new authenticator (QR code and the secret to type in). POST: its first code
    confirms it; the recovery codes are shown on that answer only (first factor)."""

    template_name = "identity/mfa_totp_enrol.html"

    def _context(self, device, form):
        return {"form": form, "qr_svg": mfa.mfa_totp_qr_svg(device), "secret": mfa.mfa_totp_secret_b32(device)}

    def get(self, request):
        device = mfa.mfa_totp_begin(user=request.user)
        request.session[TOTP_ENROL_KEY] = device.pk
        return self.render_to_response(self._context(device, MfaTotpConfirmForm()))

    def post(self, request):
        device = mfa.mfa_totp_pending(user=request.user, device_id=request.session.get(TOTP_ENROL_KEY))
        if device is None:
            return redirect("mfa:totp_enrol")
        form = MfaTotpConfirmForm(request.POST)
        if form.is_valid():
            try:
                codes = mfa.mfa_totp_confirm(
                    user=request.user,
                    device=device,
                    code=form.cleaned_data["code"],
                    name=form.cleaned_data["name"],
                    request=request,
                )
            except ApplicationError as exc:
                form.add_error("code", exc.message)
            else:
                del request.session[TOTP_ENROL_KEY]
                request.session.pop(ENROL_SESSION_KEY, None)
                if codes:
                    return render(request, "identity/mfa_recovery_codes.html", {"codes": codes})
                messages.success(request, "The authenticator app was added.")
                return redirect("mfa:manage")
        return self.render_to_response(self._context(device, form), status=400)


class MfaTotpConfirmForm(StyledFormMixin, forms.Form):
    name = forms.CharField(max_length=64, required=False, label="Name (e.g. the phone)", initial="Authenticator app")
    code = forms.CharField(
        max_length=12,
        label="The code the app shows now",
        widget=forms.TextInput(attrs={"autocomplete": "one-time-code", "inputmode": "numeric"}),
    )


class MfaSecurityKeyOptionsView(_ReauthRequiredMixin, View):
    """POST: WebAuthn creation options for a new security key (JSON)."""

    def post(self, request):
        return JsonResponse(json.loads(mfa.mfa_security_key_register_begin(user=request.user, request=request)))


class MfaSecurityKeyRegisterView(_ReauthRequiredMixin, View):
    """POST {credential, name}: store the new key; answers the recovery codes when it is the first factor."""

    def post(self, request):
        try:
            body = _json_body(request)
            key = mfa.mfa_security_key_register_finish(
                user=request.user,
                request=request,
                credential=body.get("credential") or {},
                name=str(body.get("name") or "Security key"),
            )
        except ApplicationError as exc:
            return _json_error(exc)
        request.session.pop(ENROL_SESSION_KEY, None)
        return JsonResponse({"id": key.pk, "name": key.name, "recovery_codes": key.recovery_codes}, status=201)


class MfaFactorRemoveView(_ReauthRequiredMixin, View):
    """POST factor=totp|security_key, id: remove one of the user's own factors."""

    def post(self, request):
        try:
            factor_id = int(request.POST.get("id", ""))
            mfa.mfa_factor_remove(
                user=request.user, factor=request.POST.get("factor", ""), factor_id=factor_id, request=request
            )
        except ValueError:
            messages.error(request, "Unknown factor.")
        except ApplicationError as exc:
            messages.error(request, exc.message)
        else:
            messages.success(request, "The factor was removed.")
        return redirect("mfa:manage")


class MfaRecoveryCodesView(_ReauthRequiredMixin, View):
    """POST: new recovery codes, shown on this answer only."""

    def post(self, request):
        try:
            codes = mfa.mfa_recovery_codes_regenerate(user=request.user, request=request)
        except ApplicationError as exc:
            messages.error(request, exc.message)
            return redirect("mfa:manage")
        return render(request, "identity/mfa_recovery_codes.html", {"codes": codes})
