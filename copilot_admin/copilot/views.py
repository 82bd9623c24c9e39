"""Copilot pages: the playground and the tenant's copilot switches."""

from __future__ import annotations

from django import forms
from django.shortcuts import render
from django.urls import reverse
from django.utils import timezone
from django.views.generic import FormView, TemplateView

from copilot_admin.access.base_views import TenantPageMixin
from copilot_admin.access.permissions import ANY_MEMBER, Perm
from copilot_admin.copilot import services
from copilot_admin.copilot.features import FEATURES
from copilot_admin.copilot.forms import CopilotSettingsForm
from copilot_admin.copilot.minimize import PayloadError
from copilot_admin.copilot.preview import sent_preview
from copilot_admin.copilot.settings_services import tenant_copilot_settings_update
from copilot_admin.copilot.targets import deployments_for_zone
from copilot_admin.core.client_ip import client_ip
from copilot_admin.core.context import request_ids
from copilot_admin.core.errors import ApplicationError
from copilot_admin.core.forms import ServiceFormMixin, StyledFormMixin
from copilot_admin.core.humanize import moment_words
from copilot_admin.identity.mfa import mfa_tenant_required, mfa_tenant_required_set
from copilot_admin.usage.selectors import copilot_access_suspended_until
from tenants.selectors import companies_in_scope


class PlaygroundForm(StyledFormMixin, forms.Form):
    """A ticket as a PSA would send it. The internal note is there to show it is never sent."""

    company = forms.ModelChoiceField(queryset=None, empty_label=None, label="Client company")
    first_name = forms.CharField(max_length=200, required=False, label="Contact first name")
    last_name = forms.CharField(max_length=200, required=False, label="Contact last name")
    contact_type = forms.CharField(max_length=100, required=False, initial="customer", label="Contact type")
    summary = forms.CharField(max_length=1000, label="Ticket summary")
    description = forms.CharField(max_length=20000, required=False, widget=forms.Textarea(attrs={"rows": 3}))
    reply = forms.CharField(
        max_length=10000, required=False, label="Latest reply from the contact", widget=forms.Textarea(attrs={"rows": 2})
    )
    internal_note = forms.CharField(
        max_length=10000, required=False, widget=forms.Textarea(attrs={"rows": 2}),
        help_text="Internal notes are dropped before the call: they never reach the model.",
    )

    def __init__(self, *args, membership, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["company"].queryset = companies_in_scope(membership=membership).filter(is_active=True).order_by("name")

    def body(self) -> dict:
        data = self.cleaned_data
        conversation = []
        if data["reply"]:
            conversation.append({"author": "contact", "body": data["reply"], "internal": False})
        if data["internal_note"]:
            conversation.append({"author": "technician", "body": data["internal_note"], "internal": True})
        return {
            "company": str(data["company"].pk),
            "contact": {"first_name": data["first_name"], "last_name": data["last_name"], "type": data["contact_type"]},
            "issue": {"summary": data["summary"], "description": data["description"], "conversation": conversation},
        }


# A plausible ticket to start from (`?sample=1`): a reply from the contact and an internal note,
# so the preview shows what is sent and what is dropped.
SAMPLE_TICKET = {
    "first_name": "Dana",
    "last_name": "Whitfield",
    "contact_type": "customer",
    "summary": "Outlook keeps asking for the password after the Windows update",
    "description": (
        "Since this morning's Windows update, Outlook on Dana's laptop prompts for the password every few "
        "minutes and does not download new mail. Webmail works. Two colleagues in the finance team see the same."
    ),
    "reply": "I have restarted the laptop twice and it still asks. I have a client meeting at 14:00 and need my mail.",
    "internal_note": "Customer's MFA reset code is 448-213; do not share. Check the conditional access policy first.",
}


def refusal_badge(code: str, *, tenant) -> str:
    """A refusal in a few words for a feature's badge ("Not in your role")."""
    words = {
        "not_entitled": f"Not in the {tenant.get_plan_display()} plan",
        "copilot_disabled": f"Switched off for {tenant.name}",
        "feature_disabled": f"Switched off for {tenant.name}",
        "permission_denied": "Not in your role",
        "access_suspended": "Your access is suspended",
        "access_terminated": "Your access is terminated",
        "tenant_suspended": f"{tenant.name} is suspended",
    }
    return words.get(code, services.REFUSALS.get(code, (0, code))[1])


def refusal_reason(code: str, *, membership) -> str:
    """The refusal as a sentence: for a suspension, until when and whom to ask."""
    if code == "access_suspended":
        until = copilot_access_suspended_until(membership=membership)
        when = f" until {moment_words(until, now=timezone.now())}" if until else ""
        return f"Your copilot access is suspended{when}. Ask an administrator of {membership.tenant.name} to review it."
    if code == "access_terminated":
        return ("Your copilot access is terminated until a platform operator reinstates it; "
                f"ask an administrator of {membership.tenant.name}.")
    if code == "not_entitled":
        return (f"The copilot is not included in the {membership.tenant.get_plan_display()} plan; "
                "the platform operator sets the plan.")
    return services.REFUSALS[code][1]


class PlaygroundView(TenantPageMixin, TemplateView):
    """Try the copilot features the caller's role grants; refusals show their reason."""

    permission_required = ANY_MEMBER
    template_name = "copilot/playground.html"

    def features(self) -> list[dict]:
        return [
            {
                "value": feature.slug,
                "label": feature.label,
                "refusal": (code := services.feature_refusal(self.membership, feature)),
                "badge": refusal_badge(code, tenant=self.tenant) if code else "",
                "reason": refusal_reason(code, membership=self.membership) if code else "",
            }
            for feature in FEATURES.values()
        ]

    def get_context_data(self, **kwargs):
        if "form" not in kwargs:
            initial = SAMPLE_TICKET if self.request.GET.get("sample") else None
            kwargs["form"] = PlaygroundForm(initial=initial, membership=self.membership)
        return super().get_context_data(features=self.features(), **kwargs)

    def preview(self, form, feature: str) -> dict:
        """The "show what is sent" panel: minimize and render, nothing called, stored or logged."""
        available = {f["value"] for f in self.features() if not f["refusal"]}
        if feature not in available:
            return {"error": {"code": "invalid", "message": "Choose a feature you may use to preview."}}
        if not form.is_valid():
            return {"error": {"code": "invalid", "message": "Check the ticket fields."}}
        try:
            targets = deployments_for_zone(self.tenant.zone_id)
            return {"preview": sent_preview(feature=feature, body=form.body(), targets=targets)}
        except PayloadError as error:
            return {"error": {"code": error.code, "message": error.message}}

    def post(self, request, *args, **kwargs):
        form = PlaygroundForm(request.POST, membership=self.membership)
        feature = request.POST.get("feature", "")
        context = {"form": form, "feature": feature}
        if "preview" in request.POST:
            context.update(self.preview(form, request.POST.get("preview", "")))
        elif feature not in FEATURES:
            context["error"] = {"code": "invalid", "message": "Choose a feature."}
        elif form.is_valid():
            try:
                answer = services.copilot_invoke(
                    user=request.user, membership=self.membership, feature=feature, body=form.body(),
                    origin=services.CallOrigin(remote_addr=client_ip(request) or "", **request_ids(request)),
                )
                context["answer"] = answer
                context["answer_label"] = FEATURES[feature].label
            except services.CopilotError as error:
                context["error"] = error.body()["error"]
                if error.code in ("access_suspended", "access_terminated", "not_entitled"):
                    context["error"]["message"] = refusal_reason(error.code, membership=self.membership)
            except ApplicationError as error:
                context["error"] = {"code": error.code, "message": error.message}
        else:
            context["error"] = {"code": "invalid", "message": "Check the ticket fields."}
        if request.headers.get("HX-Request"):
            # The result, and the ticket fields again out of band: their errors next to them.
            return render(request, "copilot/_htmx_result.html", context)
        return self.render_to_response(self.get_context_data(**context))


class CopilotSettingsPageView(ServiceFormMixin, TenantPageMixin, FormView):
    permission_required = Perm.COPILOT_SETTINGS
    form_class = CopilotSettingsForm
    template_name = "tenants/copilot_settings.html"

    def get_form_kwargs(self):
        return {
            **super().get_form_kwargs(),
            "features": {slug: feature.label for slug, feature in FEATURES.items()},
            "read_only": not self.tenant.plan_includes_copilot,
        }


    def get_initial(self):
        initial = {"copilot_enabled": self.tenant.copilot_enabled, "mfa_required": mfa_tenant_required(tenant=self.tenant)}
        initial.update({f"feature_{f}": self.tenant.feature_enabled(f) for f in FEATURES})
        return initial

    def perform(self, form) -> str:
        data = form.cleaned_data
        # Without the copilot in the plan its switches are read-only (disabled fields keep their values).
        if self.tenant.plan_includes_copilot:
            tenant_copilot_settings_update(
                actor=self.membership,
                copilot_enabled=data["copilot_enabled"],
                features={f: data[f"feature_{f}"] for f in FEATURES},
            )
        if data["mfa_required"] != mfa_tenant_required(tenant=self.tenant):  # its own permission (admin.users)
            mfa_tenant_required_set(actor=self.membership, mfa_required=data["mfa_required"], request=self.request)
        return "Copilot settings were saved."

    def get_success_url(self):
        return reverse("copilot:settings", kwargs={"tenant_slug": self.tenant.slug})


