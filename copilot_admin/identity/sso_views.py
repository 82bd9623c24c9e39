"""Pages of single sign-on: the login page (e-mail first, then "Sign in with Microsoft" or the
password), the sign-in's start and callback, and the tenant's configuration page.

The sign-in keeps its state, nonce and PKCE code verifier in the server-side session under the
state value; the callback takes them out before anything else, so a state is used once (a
replayed or forged callback finds nothing and is refused).
"""

from __future__ import annotations

import time
from urllib.parse import urlsplit

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import login
from django.db import transaction
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views import View
from django.views.generic import FormView

from copilot_admin.access.base_views import TenantPageMixin
from copilot_admin.access.permissions import Perm
from copilot_admin.audit.models import ActorType, Outcome
from copilot_admin.audit.services import audit_event_record
from copilot_admin.core.errors import ApplicationError
from copilot_admin.core.forms import ServiceFormMixin
from copilot_admin.core.login_policy import password_login_check
from copilot_admin.identity import oidc
from copilot_admin.identity.mfa import mfa_enrolment_missing
from copilot_admin.identity.mfa_middleware import ENROL_SESSION_KEY
from copilot_admin.identity.mfa_views import MfaLoginView
from copilot_admin.identity.models import SsoConfiguration
from copilot_admin.identity.sso_forms import LoginEmailForm, SsoConfigurationForm
from copilot_admin.identity.sso_selectors import sso_configuration_for_email, sso_configuration_summary
from copilot_admin.identity.sso_services import (
    SsoRefused,
    sso_client_secret,
    sso_configuration_update,
    sso_login_resolve,
    sso_refusal_record,
)
from tenants.models import Tenant

SESSION_FLOWS = "sso_flows"
MAX_FLOWS = 5


def sso_callback_url(request) -> str:
    """The redirect URI the providers call back (SSO_CALLBACK_URL, else this request's host)."""
    return settings.SSO_CALLBACK_URL or request.build_absolute_uri(reverse("sso_login_callback"))


def _safe_next(request, value: str) -> str:
    if value and url_has_allowed_host_and_scheme(value, {request.get_host()}, require_https=request.is_secure()):
        return value
    return ""


class LoginView(MfaLoginView):
    """The login page, e-mail first. Step 1 asks for the e-mail; step 2 offers "Sign in with
    Microsoft" when the e-mail's domain has approved single sign-on, and the password form
    (folded away when SSO is enforced: only the break-glass administrator may use it). A password
    login first passes the registered password-login checks (`sso_required`: 403)."""

    template_name = "registration/login.html"
    redirect_authenticated_user = True

    def get_context_data(self, **kwargs):
        # A POST that reaches here without a step is a password attempt (e.g. a wrong password).
        kwargs.setdefault("step", "password" if self.request.method == "POST" else "email")
        if kwargs["step"] == "email":
            kwargs.setdefault("email_form", LoginEmailForm())
        else:
            email = (self.request.POST.get("username") or kwargs.get("email") or "").strip().lower()
            kwargs.setdefault("email", email)
            kwargs.setdefault("sso", sso_configuration_for_email(email) if email else None)
        return super().get_context_data(**kwargs)

    def render_to_response(self, context, **kwargs):
        response = super().render_to_response(context, **kwargs)
        config = context.get("sso")
        if config is not None:
            # The "Sign in with Microsoft" form's navigation goes on to the provider: the page's
            # Content-Security-Policy (form-action 'self') admits that one origin as well.
            parts = urlsplit(config.issuer)
            response._csp_update = {"form-action": [f"{parts.scheme}://{parts.netloc}"]}
        return response

    def post(self, request, *args, **kwargs):
        if request.POST.get("step") == "email":
            return self._email_step(request)
        try:
            password_login_check(email=request.POST.get("username", ""), request=request)
        except ApplicationError as refusal:
            form = self.get_form()
            form.is_valid()  # bound, so the e-mail stays filled in
            form.errors.clear()
            form.add_error(None, refusal.message)
            context = self.get_context_data(form=form, step="password", refusal_code=refusal.code)
            return self.render_to_response(context, status=refusal.status_code)
        return super().post(request, *args, **kwargs)

    def _email_step(self, request):
        email_form = LoginEmailForm(request.POST)
        if not email_form.is_valid():
            return self.render_to_response(self.get_context_data(email_form=email_form, step="email"))
        email = email_form.cleaned_data["email"].strip().lower()
        form = self.get_form_class()(request, initial={"username": email})
        return self.render_to_response(self.get_context_data(form=form, step="password", email=email))


def _login_refused(request, message: str, status: int = 403):
    return render(
        request,
        "registration/login.html",
        {"step": "email", "email_form": LoginEmailForm(), "sso_error": message, "next": ""},
        status=status,
    )


class SsoStartView(View):
    """POST (the login page's "Sign in with Microsoft"): start the authorization code flow with
    PKCE at the provider of the e-mail's domain."""

    http_method_names = ["post"]

    def post(self, request):
        form = LoginEmailForm(request.POST)
        if not form.is_valid():
            return redirect("login")
        email = form.cleaned_data["email"].strip().lower()
        config = sso_configuration_for_email(email)
        if config is None:
            return _login_refused(request, "Single sign-on is not set up for this e-mail address.", status=400)
        redirect_uri = sso_callback_url(request)
        try:
            metadata = oidc.oidc_discover(config.issuer)
            auth = oidc.oidc_authorization_request(
                metadata, client_id=config.client_id, redirect_uri=redirect_uri, login_hint=email
            )
        except oidc.OidcError as error:
            sso_refusal_record(config=config, reason=error.reason, email=email, request=request)
            return _login_refused(request, f"Single sign-on is not available right now: {error.message}", status=502)
        flows = dict(request.session.get(SESSION_FLOWS, {}))
        flows[auth.state] = {
            "config": config.pk,
            "tenant": config.tenant_id,
            "nonce": auth.nonce,
            "verifier": auth.code_verifier,
            "issuer": metadata.issuer,
            "redirect_uri": redirect_uri,
            "started": time.time(),
            "next": _safe_next(request, request.POST.get("next", "")),
        }
        # Only the newest few sign-ins of this browser stay open.
        request.session[SESSION_FLOWS] = dict(sorted(flows.items(), key=lambda kv: kv[1]["started"])[-MAX_FLOWS:])
        return redirect(auth.url)


class SsoCallbackView(View):
    """GET: the provider's answer. The flow is looked up by `state` and removed (one use), the
    code exchanged with the PKCE verifier, the ID token validated, and the verified e-mail signs
    in the tenant's member (or is refused, recorded in the tenant's audit log)."""

    http_method_names = ["get"]

    def get(self, request):
        state = request.GET.get("state", "")
        flows = dict(request.session.get(SESSION_FLOWS, {}))
        flow = flows.pop(state, None) if state else None
        request.session[SESSION_FLOWS] = flows
        if flow is None:
            # Unknown, already used (replayed) or another browser's state: nothing to continue.
            with transaction.atomic():
                audit_event_record(
                    tenant=None,
                    actor=None,
                    actor_type=ActorType.ANONYMOUS,
                    action="sso.login",
                    outcome=Outcome.DENIED,
                    object_type="sso",
                    metadata={"reason": "state_unknown"},
                    request=request,
                )
            return _login_refused(request, "This sign-in is no longer valid; please start again.", status=400)
        tenant = Tenant.objects.filter(pk=flow.get("tenant")).first()
        config = (
            SsoConfiguration.objects.for_tenant(tenant).filter(pk=flow["config"]).select_related("tenant").first()
            if tenant
            else None
        )
        if config is None or not config.enabled:
            return _login_refused(request, "Single sign-on is not enabled for this organization.")
        try:
            if time.time() - flow["started"] > settings.SSO_FLOW_MAX_AGE_SECONDS:
                raise oidc.OidcError("flow_expired", "The sign-in took too long; please start again.")
            if request.GET.get("error"):
                raise oidc.OidcError("provider_error", "The identity provider did not sign you in.")
            code = request.GET.get("code", "")
            if not code or config.issuer.rstrip("/") != flow["issuer"].rstrip("/"):
                raise oidc.OidcError("invalid_callback", "The sign-in could not be completed.")
            metadata = oidc.oidc_discover(config.issuer)
            id_token = oidc.oidc_code_exchange(
                metadata,
                client_id=config.client_id,
                client_secret=sso_client_secret(config),
                redirect_uri=flow["redirect_uri"],
                code=code,
                code_verifier=flow["verifier"],
            )
            claims = oidc.oidc_id_token_validate(
                id_token,
                keys=oidc.oidc_jwks(metadata),
                issuer=metadata.issuer,
                client_id=config.client_id,
                nonce=flow["nonce"],
            )
            email = oidc.oidc_verified_email(claims, issuer=metadata.issuer)
        except oidc.OidcError as error:
            sso_refusal_record(config=config, reason=error.reason, request=request)
            return _login_refused(request, f"Single sign-on refused: {error.message}")
        except SsoRefused as refusal:  # the client secret is missing from the environment
            sso_refusal_record(config=config, reason=refusal.reason, request=request)
            return _login_refused(request, refusal.message, status=503)
        try:
            user = sso_login_resolve(config=config, email=email, request=request)
        except SsoRefused as refusal:
            return _login_refused(request, refusal.message)
        # The provider authenticated the user (with its own MFA, e.g. Entra Conditional Access):
        # the portal's second factor is not asked again, but a required enrolment still holds.
        login(request, user, backend="django.contrib.auth.backends.ModelBackend")
        if mfa_enrolment_missing(user=user):
            request.session[ENROL_SESSION_KEY] = True
            messages.warning(request, "Your account needs a second factor: set one up before you continue.")
            return redirect("mfa:manage")
        return redirect(flow.get("next") or settings.LOGIN_REDIRECT_URL)


class SsoConfigurationPageView(ServiceFormMixin, TenantPageMixin, FormView):
    """The tenant's single sign-on: provider, domains (with the operator's decision), enforcement."""

    permission_required = Perm.IDENTITY
    form_class = SsoConfigurationForm
    template_name = "identity/sso.html"

    def get_initial(self):
        summary = sso_configuration_summary(tenant=self.tenant)
        return {**summary, "email_domains": ", ".join(summary["email_domains"])}

    def get_context_data(self, **kwargs):
        summary = sso_configuration_summary(tenant=self.tenant)
        return super().get_context_data(
            domains=summary["domains"], callback_url=sso_callback_url(self.request), **kwargs
        )

    def perform(self, form) -> str:
        sso_configuration_update(actor=self.membership, **form.cleaned_data)
        return "Single sign-on settings were saved."

    def get_success_url(self):
        return reverse("identity:sso", kwargs={"tenant_slug": self.tenant.slug})
