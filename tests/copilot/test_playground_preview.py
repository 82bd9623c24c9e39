"""Issue 14, the playground as a privacy demonstration: "show what is sent" and a sample ticket."""

import html
import json
import logging
import re

import pytest
from django.urls import reverse

from copilot_admin.audit.models import AuditEntry
from copilot_admin.copilot import services
from copilot_admin.copilot.minimize import minimize_payload
from copilot_admin.copilot.prompts import render_messages
from copilot_admin.copilot.views import SAMPLE_TICKET
from copilot_admin.usage.models import UsageRecord
from tests.regions.fixtures import deployment_factory, fast_upstream  # noqa: F401


@pytest.fixture
def us_deployment(deployment_factory, simulator_url, sim):  # noqa: F811
    return deployment_factory(zone="us", name="us-primary", endpoint=simulator_url, deployment="dep-us", priority=1)


def playground(slug="alpha"):
    return reverse("copilot:playground", kwargs={"tenant_slug": slug})


def stored() -> tuple[int, int]:
    return UsageRecord.objects.unscoped().count(), AuditEntry.objects.across_tenants().count() + AuditEntry.objects.platform_chain().count()


def pre(page: str, testid: str) -> str:
    match = re.search(rf'<pre[^>]*data-testid="{testid}"[^>]*>(.*?)</pre>', page, re.DOTALL)
    assert match, testid
    return html.unescape(match.group(1))


FORM = {"first_name": "Ana", "last_name": "Ruiz", "contact_type": "customer", "summary": "VPN drops every hour",
        "description": "Since Monday the VPN disconnects.", "reply": "It happened again.",
        "internal_note": "NOTE-NEVER-SENT reset code 4411"}


def the_body(company_pk) -> dict:
    """What the form stands for, written out as an API caller would send it."""
    return {"company": str(company_pk),
            "contact": {"first_name": "Ana", "last_name": "Ruiz", "type": "customer"},
            "issue": {"summary": "VPN drops every hour", "description": "Since Monday the VPN disconnects.",
                      "conversation": [{"author": "contact", "body": "It happened again.", "internal": False},
                                       {"author": "technician", "body": "NOTE-NEVER-SENT reset code 4411",
                                        "internal": True}]}}


@pytest.mark.parametrize("htmx", [False, True])
def test_preview_shows_the_minimized_payload_and_what_was_dropped_without_calling(
    client, tenant_a, us_deployment, sim, monkeypatch, caplog, htmx
):
    def no_call(**kwargs):
        raise AssertionError("the preview must not call the copilot")

    monkeypatch.setattr(services, "copilot_invoke", no_call)
    client.force_login(tenant_a.members["tech"].user)
    company = tenant_a.companies[2]
    usage_before, audit_before = stored()
    extra = {"HTTP_HX_REQUEST": "true"} if htmx else {}
    with caplog.at_level(logging.DEBUG):
        response = client.post(playground(), {**FORM, "company": company.pk, "preview": "time-entry"}, **extra)
    page = response.content.decode()
    assert response.status_code == 200 and 'data-testid="sent-preview"' in page
    assert ("<html" in page) is not htmx

    expected = minimize_payload(body=the_body(company.pk))
    assert json.loads(pre(page, "sent-payload")) == expected.as_prompt_data()
    messages = render_messages(feature="time-entry", payload=expected)
    assert pre(page, "sent-message-system") == messages[0]["content"]
    assert pre(page, "sent-message-user") == messages[1]["content"]
    # The internal note and the company are listed as dropped, and appear nowhere in what is sent.
    dropped = re.search(r'data-testid="dropped-fields">(.*?)</ul>', page, re.DOTALL).group(1)
    assert "<code>company</code>: dropped" in dropped
    assert "<code>issue.conversation[1]</code>: dropped (internal note" in dropped
    assert "NOTE-NEVER-SENT" not in pre(page, "sent-payload") + pre(page, "sent-message-user")
    assert company.name not in pre(page, "sent-payload")

    # Nothing went upstream, nothing was stored, nothing of the ticket was logged.
    assert sim.requests() == []
    assert stored() == (usage_before, audit_before)
    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert "VPN drops" not in logged and "NOTE-NEVER-SENT" not in logged


def test_preview_is_offered_only_for_features_the_caller_may_use(client, tenant_a, us_deployment, sim):
    tenant_a.tenant.feature_switches = {"summarize": True, "time-entry": False, "prioritize": True}
    tenant_a.tenant.save()
    client.force_login(tenant_a.members["tech"].user)
    page = client.get(playground()).content.decode()
    assert 'name="preview" value="summarize"' in page and 'name="preview" value="time-entry"' not in page
    refused = client.post(playground(), {**FORM, "company": tenant_a.companies[2].pk, "preview": "time-entry"})
    body = refused.content.decode()
    assert "sent-preview" not in body and "Choose a feature you may use to preview." in body
    assert sim.requests() == []


def test_preview_of_an_invalid_ticket_shows_field_errors(client, tenant_a, us_deployment, sim):
    client.force_login(tenant_a.members["tech"].user)
    response = client.post(playground(), {**FORM, "summary": "", "company": tenant_a.companies[2].pk,
                                          "preview": "summarize"})
    page = response.content.decode()
    assert response.status_code == 200 and "sent-preview" not in page and "Check the ticket fields." in page
    assert sim.requests() == []


def test_sample_ticket_fills_the_form(client, tenant_a, us_deployment, sim):
    client.force_login(tenant_a.members["tech"].user)
    empty = client.get(playground()).content.decode()
    assert 'data-testid="sample-ticket"' in empty and SAMPLE_TICKET["summary"] not in empty
    page = client.get(playground() + "?sample=1").content.decode()
    assert f'value="{SAMPLE_TICKET["summary"]}"' in page
    assert html.escape(SAMPLE_TICKET["internal_note"]) in page and html.escape(SAMPLE_TICKET["reply"]) in page
    # Previewing the sample shows its internal note dropped.
    form = {**{k: v for k, v in SAMPLE_TICKET.items()}, "company": tenant_a.companies[2].pk, "preview": "summarize"}
    preview = client.post(playground(), form).content.decode()
    assert "internal note: never sent" in preview and "448-213" not in pre(preview, "sent-payload")
