"""Copilot pages: the playground, and (development only, `COPILOT_SIMULATOR`) the built-in
simulator mounted at /_simulator/."""

from __future__ import annotations

import asyncio
from functools import lru_cache

from django import forms
from django.conf import settings
from django.http import HttpResponse
from django.shortcuts import render
from django.views.decorators.csrf import csrf_exempt
from django.views.generic import TemplateView

from copilot_admin.access.base_views import TenantPageMixin
from copilot_admin.access.client_ip import client_ip
from copilot_admin.access.errors import ApplicationError
from copilot_admin.access.forms import StyledFormMixin
from copilot_admin.access.permissions import ANY_MEMBER
from copilot_admin.audit.context import request_ids
from copilot_admin.copilot import services
from copilot_admin.copilot.features import Feature
from copilot_admin.copilot.simulator import SimulatorApp, SimulatorState
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
        self.fields["company"].queryset = companies_in_scope(membership=membership).order_by("name")

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


class PlaygroundView(TenantPageMixin, TemplateView):
    """Try the copilot features the caller's role grants; refusals show their reason."""

    permission_required = ANY_MEMBER
    template_name = "copilot/playground.html"

    def features(self) -> list[dict]:
        return [
            {
                "value": feature.value,
                "label": feature.label,
                "refusal": (code := services.feature_refusal(self.membership, feature)),
                "reason": services.REFUSALS[code][1] if code else "",
            }
            for feature in Feature
        ]

    def get_context_data(self, **kwargs):
        kwargs.setdefault("form", PlaygroundForm(membership=self.membership))
        return super().get_context_data(features=self.features(), **kwargs)

    def post(self, request, *args, **kwargs):
        form = PlaygroundForm(request.POST, membership=self.membership)
        feature = request.POST.get("feature", "")
        context = {"form": form, "feature": feature}
        if feature not in Feature.values:
            context["error"] = {"code": "invalid", "message": "Choose a feature."}
        elif form.is_valid():
            try:
                answer = services.copilot_invoke(
                    user=request.user, membership=self.membership, feature=feature, body=form.body(),
                    origin=services.CallOrigin(remote_addr=client_ip(request) or "", **request_ids(request)),
                )
                context["answer"] = answer
            except services.CopilotError as error:
                context["error"] = error.body()["error"]
            except ApplicationError as error:
                context["error"] = {"code": error.code, "message": error.message}
        else:
            context["error"] = {"code": "invalid", "message": "Check the ticket fields."}
        if request.headers.get("HX-Request"):
            return render(request, "copilot/_result.html", context)
        return self.render_to_response(self.get_context_data(**context))


# --- the simulator, mounted for `make run` ---------------------------------------------------


@lru_cache(maxsize=2)
def _simulator(control_token: str) -> SimulatorApp:
    """The mounted simulator; its control endpoints (request log, behaviours) need
    `COPILOT_SIMULATOR_TOKEN`, and without one they are not served."""
    return SimulatorApp(SimulatorState(max_recorded=1000, control_token=control_token or None))


@csrf_exempt
async def simulator_view(request, path: str = ""):
    """Serve the Azure OpenAI simulator inside the project (settings.COPILOT_SIMULATOR only).

    Translates the Django request into one ASGI call of the simulator app, so it works under
    runserver (WSGI) and uvicorn alike. The demo deployments point here. The completion endpoint
    checks the api-key like Azure; the control endpoints need the `X-Simulator-Token` header
    holding `COPILOT_SIMULATOR_TOKEN` (403 without it; 404 when no token is configured).
    """
    sent_body = False

    async def receive():
        nonlocal sent_body
        if not sent_body:
            sent_body = True
            return {"type": "http.request", "body": request.body, "more_body": False}
        await asyncio.Event().wait()  # the client never disconnects mid-request here
        return {"type": "http.disconnect"}

    reply = {"status": 500, "headers": [], "body": []}

    async def send(message):
        if message["type"] == "http.response.start":
            reply["status"] = message["status"]
            reply["headers"] = message.get("headers", [])
        elif message["type"] == "http.response.body":
            reply["body"].append(message.get("body", b""))

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": request.method,
        "scheme": request.scheme,
        "path": "/" + path,
        "raw_path": ("/" + path).encode(),
        "query_string": request.META.get("QUERY_STRING", "").encode("latin-1"),
        "headers": [(name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in request.headers.items()],
        "client": (request.META.get("REMOTE_ADDR", "127.0.0.1"), 0),
        "server": ("127.0.0.1", 0),
    }
    await _simulator(settings.COPILOT_SIMULATOR_TOKEN)(scope, receive, send)
    response = HttpResponse(b"".join(reply["body"]), status=reply["status"])
    for name, value in reply["headers"]:
        if name.lower() not in (b"content-length",):
            response[name.decode("latin-1")] = value.decode("latin-1")
    return response
