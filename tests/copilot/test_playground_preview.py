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


def field_block(page: str, name: str) -> str:
    """The markup of one ticket field's block in the form (label, input, help, errors)."""
    match = re.search(rf'<div class="mb-3">\s*<label class="form-label" for="id_{name}">.*?</div>\s*(?=<div class="mb-3">|</div>\s*$)',
                      page, re.DOTALL)
    assert match, name
    return match.group(0)


@pytest.mark.parametrize("htmx", [False, True])
@pytest.mark.parametrize("action", [{"preview": "summarize"}, {"feature": "summarize"}])
def test_field_errors_show_next_to_their_field_with_and_without_javascript(
    client, tenant_a, us_deployment, sim, htmx, action
):
    client.force_login(tenant_a.members["tech"].user)
    extra = {"HTTP_HX_REQUEST": "true"} if htmx else {}
    response = client.post(playground(), {**FORM, "summary": "", "first_name": "x" * 201,
                                          "company": tenant_a.companies[2].pk, **action}, **extra)
    page = response.content.decode()
    assert response.status_code == 200 and sim.requests() == []
    fields = re.search(r'<div id="playground-fields"(.*?)data-testid="playground-fields">(.*)', page, re.DOTALL)
    assert fields, "the ticket fields are in the answer"
    # With htmx the fields come back out of band, so the errors replace the form's fields in place.
    assert ('hx-swap-oob="true"' in fields.group(1)) is htmx
    summary = field_block(fields.group(2), "summary")
    assert 'aria-invalid="true"' in summary and 'aria-describedby="id_summary_error"' in summary
    assert re.search(r'id="id_summary_error">\s*<div>This field is required.</div>', summary)
    first_name = field_block(fields.group(2), "first_name")
    assert "Ensure this value has at most 200 characters" in first_name
    last_name = field_block(fields.group(2), "last_name")
    assert "invalid" not in last_name
    # The result panel says so in a sentence and links to each field.
    assert "Check the ticket fields." in page and 'href="#id_summary">Ticket summary</a>' in page


def test_a_corrected_ticket_clears_the_errors_beside_the_fields(client, tenant_a, us_deployment, sim):
    client.force_login(tenant_a.members["tech"].user)
    page = client.post(playground(), {**FORM, "company": tenant_a.companies[2].pk, "preview": "summarize"},
                       HTTP_HX_REQUEST="true").content.decode()
    assert 'hx-swap-oob="true"' in page and "is-invalid" not in page and "invalid-feedback" not in page


@pytest.mark.parametrize("htmx", [False, True])
def test_preview_shows_the_request_settings_sent_and_never_a_key(
    client, tenant_a, deployment_factory, simulator_url, sim, monkeypatch, htmx  # noqa: F811
):
    from copilot_admin.copilot.features import get_feature
    from tests.regions.fixtures import TEST_KEY_ENV

    deployment_factory(zone="us", name="us-first", endpoint=simulator_url, deployment="dep-us-first",
                       priority=1)
    deployment_factory(zone="us", name="us-second", endpoint=simulator_url, deployment="dep-us-second", priority=2)
    client.force_login(tenant_a.members["tech"].user)
    extra = {"HTTP_HX_REQUEST": "true"} if htmx else {}
    page = client.post(playground(), {**FORM, "company": tenant_a.companies[2].pk, "preview": "time-entry"},
                       **extra).content.decode()
    spec = get_feature("time-entry")
    settings_table = re.search(r'data-testid="sent-settings">(.*?)</table>', page, re.DOTALL).group(1)
    text = html.unescape(re.sub(r"<[^>]+>", " ", settings_table))
    assert re.search(r"Deployment \(model\)\s+dep-us-first\s+\(tried first; 1 more", text)
    assert re.search(r"API version\s+2024-10-21", text)
    assert re.search(rf"Temperature\s+{spec.temperature}", text)
    assert re.search(rf"Maximum answer tokens\s+{spec.max_completion_tokens}", text)
    assert "json_schema" in text and spec.schema_name in text
    # The feature by its label, never a key, its variable or the endpoint.
    assert "What would be sent for Draft time entry" in page
    assert "test-key-not-a-secret" not in page and TEST_KEY_ENV not in page and simulator_url not in page
    assert sim.requests() == []


def test_preview_says_when_the_zone_has_no_deployment(client, tenant_a, sim):
    client.force_login(tenant_a.members["tech"].user)
    page = client.post(playground(), {**FORM, "company": tenant_a.companies[2].pk, "preview": "summarize"}).content.decode()
    assert 'data-testid="sent-preview"' in page and 'data-testid="sent-settings-none"' in page
    assert "No deployment serves the US zone yet" in page


def test_request_parameters_are_what_the_call_passes():
    from copilot_admin.copilot.azure import DeploymentTarget, _request_kwargs, request_parameters
    from copilot_admin.copilot.features import get_feature

    target = DeploymentTarget(name="t", endpoint="https://example.openai.azure.com", deployment="dep-1",
                              api_version="2025-01-01-preview", api_key_env="AZURE_OPENAI_KEY_T")
    spec = get_feature("summarize")
    sent = _request_kwargs(target=target, messages=[], spec=spec, remaining=None)
    shown = request_parameters(target=target, spec=spec)
    assert (shown["model"], shown["temperature"], shown["max_completion_tokens"]) == (
        sent["model"], sent["temperature"], sent["max_completion_tokens"])
    assert shown["api_version"] == "2025-01-01-preview"
    assert sent["response_format"]["json_schema"]["name"] in shown["response_format"]
    assert "AZURE_OPENAI_KEY_T" not in repr(shown) and "example.openai.azure.com" not in repr(shown)


def test_an_answer_names_the_feature_by_its_label(client, tenant_a, us_deployment, sim):
    client.force_login(tenant_a.members["tech"].user)
    page = client.post(playground(), {**FORM, "company": tenant_a.companies[2].pk, "feature": "time-entry"},
                       HTTP_HX_REQUEST="true").content.decode()
    assert 'data-testid="copilot-answer"' in page
    assert "Draft time entry: result" in page and "time-entry: result" not in page
