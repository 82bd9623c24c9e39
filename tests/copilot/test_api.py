"""`POST /api/v1/tenants/<slug>/copilot/<feature>/` end to end: the contract's answers, every
upstream error shape, payload rules, the privacy canary, and the OpenAPI description."""

import io
import json
import logging
import uuid

import pytest
from django.core.management import call_command
from django.urls import reverse

from copilot_admin.usage import services as usage
from copilot_admin.usage.models import UsageRecord
from tests.conftest import api_client_for
from tests.factories import add_member
from tests.regions.fixtures import deployment_factory, fast_upstream  # noqa: F401

FEATURES = {"summarize": "api:copilot-summarize", "time-entry": "api:copilot-time-entry",
            "prioritize": "api:copilot-prioritize"}


def url(feature="summarize", slug="alpha"):
    return reverse(FEATURES[feature], kwargs={"tenant_slug": slug})


def ticket(company, **issue):
    return {
        "company": str(company.pk),
        "contact": {"first_name": "Ana", "last_name": "Ruiz", "type": "customer"},
        "issue": {"summary": "VPN drops every hour", "description": "Since Monday the VPN disconnects.",
                  "conversation": [{"author": "contact", "body": "It happened again.", "at": "2026-11-20T10:00:00Z",
                                    "internal": False}], **issue},
    }


@pytest.fixture
def us_deployment(deployment_factory, simulator_url, sim):
    return deployment_factory(zone="us", name="us-primary", endpoint=simulator_url, deployment="dep-us", priority=1)


@pytest.fixture
def tech_api(tenant_a):
    return api_client_for(tenant_a.members["tech"].user)


def assert_error(response, status, code):
    assert response.status_code == status, (response.status_code, response.content[:300])
    body = response.json()
    assert set(body) == {"error"} and body["error"]["code"] == code and body["error"]["message"]
    return body["error"]


# --- success ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("feature,fields", [
    ("summarize", {"summary", "key_details", "next_steps"}),
    ("time-entry", {"notes", "hours", "work_type"}),
    ("prioritize", {"priority", "rationale"}),
])
def test_success_contract(tenant_a, us_deployment, tech_api, feature, fields):
    response = tech_api.post(url(feature), ticket(tenant_a.companies[0]), format="json")
    assert response.status_code == 200, response.content
    body = response.json()
    assert set(body) == fields | {"request_id", "zone", "usage"}
    assert body["zone"] == "us" and set(body["usage"]) == {"prompt_tokens", "completion_tokens"}
    assert UsageRecord.objects.for_tenant(tenant_a.tenant).get().request_id == body["request_id"]


def test_unknown_feature_wrong_method_and_media_type(tenant_a, us_deployment, tech_api):
    assert tech_api.post("/api/v1/tenants/alpha/copilot/translate/", {}, format="json").status_code == 404
    assert_error(tech_api.get(url()), 405, "method_not_allowed")
    assert_error(tech_api.post(url(), "company=1", content_type="application/x-www-form-urlencoded"), 415,
                 "unsupported_media_type")
    assert_error(tech_api.post(url(), "{not json", content_type="application/json"), 400, "parse_error")


def test_anonymous_stranger_and_foreign_tenant(tenant_a, tenant_b, us_deployment):
    body = ticket(tenant_a.companies[0])
    error = assert_error(api_client_for(None).post(url(), body, format="json"), 401, "not_authenticated")
    assert error
    stranger = api_client_for(tenant_b.members["tech"].user).post(url(), body, format="json")
    missing = api_client_for(tenant_a.members["tech"].user).post(url(slug="nowhere"), body, format="json")
    assert stranger.status_code == missing.status_code == 404 and stranger.json() == missing.json()


# --- refusals through the API ----------------------------------------------------------------------------


@pytest.mark.parametrize("change,code", [
    ({"plan": "itsm"}, "not_entitled"),
    ({"copilot_enabled": False}, "copilot_disabled"),
    ({"feature_switches": {"summarize": False}}, "feature_disabled"),
    ({"status": "suspended"}, "tenant_suspended"),
])
def test_tenant_refusals(tenant_a, us_deployment, tech_api, change, code):
    for field, value in change.items():
        setattr(tenant_a.tenant, field, value)
    tenant_a.tenant.save()
    assert_error(tech_api.post(url(), ticket(tenant_a.companies[0]), format="json"), 403, code)


def test_permission_denied_for_auditor(tenant_a, us_deployment):
    api = api_client_for(tenant_a.members["auditor"].user)
    assert_error(api.post(url(), ticket(tenant_a.companies[0]), format="json"), 403, "permission_denied")


@pytest.mark.parametrize("state", ["suspended", "terminated"])
def test_access_suspended_and_terminated(tenant_a, us_deployment, tech_api, monkeypatch, state):
    monkeypatch.setattr(usage, "copilot_access_state", lambda m: state)
    assert_error(tech_api.post(url(), ticket(tenant_a.companies[0]), format="json"), 403, f"access_{state}")


def test_company_out_of_scope_for_co_managed(tenant_a, tenant_b, us_deployment, sim):
    api = api_client_for(tenant_a.members["comanaged"].user)
    assert api.post(url(), ticket(tenant_a.companies[0]), format="json").status_code == 200
    answers = [api.post(url(), ticket(company), format="json") for company in (*tenant_a.companies[1:], tenant_b.companies[0])]
    assert {r.status_code for r in answers} == {403}
    assert len({r.content for r in answers}) == 1
    assert answers[0].json()["error"]["code"] == "company_out_of_scope"
    assert len(sim.requests()) == 1


def test_rate_limited_by_limits_has_retry_after(tenant_a, us_deployment, tech_api, monkeypatch, sim):
    def refuse(**kwargs):
        raise usage.RateLimitExceeded(retry_after=17)

    monkeypatch.setattr(usage, "limits_reserve", refuse)
    response = tech_api.post(url(), ticket(tenant_a.companies[0]), format="json")
    assert_error(response, 429, "rate_limited")
    assert response["Retry-After"] == "17" and sim.requests() == []


def test_no_deployment_in_zone(tenant_a, tech_api, deployment_factory, simulator_url):
    deployment_factory(zone="eu", name="eu-only", endpoint=simulator_url)
    assert_error(tech_api.post(url(), ticket(tenant_a.companies[0]), format="json"), 503, "no_deployment_in_zone")


@pytest.mark.parametrize("mutate,status,code", [
    (lambda b: b["issue"].pop("summary"), 400, "invalid_payload"),
    (lambda b: b.pop("issue"), 400, "invalid_payload"),
    (lambda b: b["issue"]["conversation"][0].pop("internal"), 400, "invalid_payload"),
    (lambda b: b["issue"].update(conversation="not a list"), 400, "invalid_payload"),
    (lambda b: b.pop("company"), 400, "invalid_payload"),
    (lambda b: b["issue"].update(description="x" * 20_001), 413, "payload_too_large"),
    (lambda b: b["issue"].update(conversation=[{"body": "x", "internal": False}] * 201), 413, "payload_too_large"),
])
def test_bad_payload_sends_nothing(tenant_a, us_deployment, tech_api, sim, mutate, status, code):
    body = ticket(tenant_a.companies[0])
    mutate(body)
    error = assert_error(tech_api.post(url(), body, format="json"), status, code)
    assert error["fields"]
    assert sim.requests() == []


def test_body_that_is_not_an_object(tenant_a, us_deployment, tech_api, sim):
    assert_error(tech_api.post(url(), [1, 2], format="json"), 400, "invalid_payload")
    assert sim.requests() == []


# --- every upstream error shape, end to end ---------------------------------------------------------------


@pytest.mark.parametrize("mode,options,status,code", [
    ("429", {"retry_after": 2.5}, 429, "rate_limited"),
    ("500", {}, 503, "upstream_unavailable"),
    ("503", {}, 503, "upstream_unavailable"),
    ("timeout", {"delay_ms": 0}, 504, "upstream_timeout"),  # Azure's 408
    ("timeout", {"delay_ms": 3000}, 504, "upstream_timeout"),  # no answer within our timeout
    ("slow", {"delay_ms": 3000}, 504, "upstream_timeout"),
    ("content_filter_prompt", {"categories": ["hate", "violence"]}, 422, "content_filtered"),
    ("content_filter_completion", {"categories": ["self_harm"]}, 422, "content_filtered"),
    ("filter_error", {}, 502, "upstream_error"),
    ("prompt_filter_error", {}, 502, "upstream_error"),
    ("invalid_json", {}, 502, "upstream_error"),
    ("schema_mismatch", {}, 502, "upstream_error"),
])
def test_upstream_errors(tenant_a, us_deployment, tech_api, sim, fast_upstream, mode, options, status, code):
    sim.set_behaviour(mode, **options)
    response = tech_api.post(url(), ticket(tenant_a.companies[0]), format="json")
    error = assert_error(response, status, code)
    record = UsageRecord.objects.for_tenant(tenant_a.tenant).get()
    assert error["request_id"] == record.request_id and (record.outcome, record.error_code) == ("failed", code)
    if code == "rate_limited":
        assert response["Retry-After"] == "3"
    else:
        assert not response.has_header("Retry-After")
    if code == "content_filtered":
        stage = "prompt" if mode == "content_filter_prompt" else "completion"
        assert (error["stage"], error["categories"]) == (stage, sorted(options["categories"]))
    else:
        assert "stage" not in error


def test_missing_api_key_is_unavailable(tenant_a, tech_api, deployment_factory, simulator_url, monkeypatch, sim):
    deployment_factory(zone="us", name="keyless", endpoint=simulator_url, api_key_env="AZURE_OPENAI_KEY_TEST_UNSET")
    monkeypatch.delenv("AZURE_OPENAI_KEY_TEST_UNSET", raising=False)
    error = assert_error(tech_api.post(url(), ticket(tenant_a.companies[0]), format="json"), 503, "upstream_unavailable")
    assert "AZURE_OPENAI_KEY_TEST_UNSET" not in json.dumps(error)  # configuration detail stays in the logs
    assert sim.requests() == []


def test_a_stored_key_variable_outside_the_prefix_is_never_read(
    tenant_a, tech_api, deployment_factory, simulator_url, monkeypatch, sim
):
    # Stored before the AZURE_OPENAI_KEY_ rule (written around the service): refused at call time.
    deployment_factory(zone="us", name="exfiltrate", endpoint=simulator_url, api_key_env="DJANGO_SECRET_KEY")
    monkeypatch.setenv("DJANGO_SECRET_KEY", "canary-django-secret")
    assert_error(tech_api.post(url(), ticket(tenant_a.companies[0]), format="json"), 503, "upstream_unavailable")
    assert sim.requests() == []


def test_unreachable_deployment_fails_over(tenant_a, tech_api, deployment_factory, simulator_url, sim, closed_port):
    deployment_factory(zone="us", name="down", endpoint=f"http://127.0.0.1:{closed_port}", priority=1)
    deployment_factory(zone="us", name="up", endpoint=simulator_url, priority=2)
    response = tech_api.post(url(), ticket(tenant_a.companies[0]), format="json")
    assert response.status_code == 200
    assert UsageRecord.objects.for_tenant(tenant_a.tenant).get().deployment == "up"


# --- privacy -------------------------------------------------------------------------------------------------


def test_privacy_canary(tenant_a, us_deployment, sim, caplog, mailoutbox):
    """A canary in every allowed field of many calls appears nowhere afterwards (database dump,
    logs, e-mails); a canary in a disallowed field or an internal entry never reaches the upstream."""
    caplog.set_level(logging.DEBUG)
    allowed = f"CANARY{uuid.uuid4().hex}"
    forbidden = f"FORBIDDEN{uuid.uuid4().hex}"
    statuses = []
    modes = [("ok", {}), ("ok", {"echo": True}), ("invalid_json", {"echo": True}), ("schema_mismatch", {"echo": True}),
             ("content_filter_completion", {}), ("content_filter_prompt", {}), ("500", {})]
    # Each member makes one round of every mode: within its limits and below the strike-out.
    members = [tenant_a.members["tech"], tenant_a.members["admin"]] + [
        add_member(tenant_a.tenant, "Technician", email=f"canary{n}@alpha.test") for n in range(2)]
    for index in range(len(members) * len(modes)):
        mode, options = modes[index % len(modes)]
        tech_api = api_client_for(members[index // len(modes)].user)
        sim.set_behaviour(mode, **options)
        feature = list(FEATURES)[index % 3]
        body = {
            "company": str(tenant_a.companies[index % 3].pk),
            "contact": {"first_name": f"{allowed}-first", "last_name": f"{allowed}-last", "type": f"{allowed}-type",
                        "email": f"{forbidden}@example.com", "phone": forbidden},
            "issue": {
                "summary": f"{allowed} summary", "description": f"{allowed} description", "id": forbidden,
                "attachments": [{"name": forbidden}],
                "conversation": [
                    {"author": f"{allowed}-author", "body": f"{allowed} body", "at": "2026-11-20T10:00:00Z",
                     "internal": False, "email": forbidden},
                    {"author": "technician", "body": f"{forbidden} internal note", "internal": True},
                ],
                "internal_notes": forbidden,
            },
            "ticket_number": forbidden,
            "resources": {"secret": forbidden},
        }
        response = tech_api.post(url(feature), body, format="json")
        statuses.append(response.status_code)
        if response.status_code >= 400:
            assert allowed not in response.content.decode()  # errors never quote the ticket or the model
    assert 200 in statuses and 422 in statuses and 502 in statuses and 503 in statuses

    received = json.dumps(sim.requests())
    assert allowed in received  # the allowed fields did reach the model
    assert forbidden not in received

    dump = io.StringIO()
    call_command("dumpdata", stdout=dump)
    assert UsageRecord.objects.for_tenant(tenant_a.tenant).count() == len(statuses)
    assert allowed not in dump.getvalue() and forbidden not in dump.getvalue()
    mails = "\n".join(f"{m.subject} {m.body} {m.alternatives!r}" for m in mailoutbox)
    assert allowed not in mails and forbidden not in mails
    logged = "\n".join(f"{r.name} {r.getMessage()} {r.args!r} {r.__dict__.get('exc_text')}" for r in caplog.records)
    assert "copilot call" in logged  # the calls were logged, as metadata
    assert allowed not in logged and forbidden not in logged


# --- OpenAPI ---------------------------------------------------------------------------------------------------


def test_openapi_documents_the_copilot_calls(db):
    from rest_framework.test import APIClient

    schema = APIClient().get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()
    for feature in FEATURES:
        operation = schema["paths"][f"/api/v1/tenants/{{tenant_slug}}/copilot/{feature}/"]["post"]
        assert operation["requestBody"]["content"]["application/json"]["schema"]["$ref"].endswith("CopilotRequestRequest")
        assert {"200", "400", "401", "403", "404", "413", "422", "429", "502", "503", "504"} <= set(operation["responses"])
    components = schema["components"]["schemas"]
    assert set(components["SummarizeResult"]["required"]) >= {"summary", "key_details", "next_steps", "request_id", "zone", "usage"}
    assert components["PrioritizeResult"]["properties"]["priority"]["$ref"]


# --- schemathesis over the copilot endpoints ----------------------------------------------------------------


@pytest.mark.parametrize("feature", list(FEATURES))
def test_schemathesis_no_server_error_and_responses_follow_the_schema(tenant_a, us_deployment, sim, monkeypatch, feature):
    """Generated bodies (valid by the schema, with the company sometimes one in scope) never
    get a 500 and every answer matches the documented responses. The usage limits and abuse
    rules are lifted: this is about input handling, not about one user's rate."""
    schemathesis = pytest.importorskip("schemathesis")
    monkeypatch.setattr(usage, "limits_reserve", lambda **kw: usage.Reservation(
        membership=kw["membership"], limits=None, estimated_tokens=kw["estimated_tokens"]))
    monkeypatch.setattr(usage, "limits_settle", lambda **kw: None)
    monkeypatch.setattr(usage, "copilot_access_state", lambda membership: "active")
    from django.core import signals
    from django.core.wsgi import get_wsgi_application
    from django.db import close_old_connections
    from knox.models import AuthToken

    _, token = AuthToken.objects.create(user=tenant_a.members["tech"].user)
    # As Django's test client does: the end of a request must not close the test's connection
    # (it holds the test's transaction).
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    try:
        schema = schemathesis.openapi.from_wsgi("/api/schema/", get_wsgi_application())
        _schemathesis_run(schema, feature, tenant_a, token)
    finally:
        signals.request_started.connect(close_old_connections)
        signals.request_finished.connect(close_old_connections)


def _schemathesis_run(schema, feature, tenant_a, token):
    from hypothesis import HealthCheck, given, settings
    from schemathesis.checks import (
        content_type_conformance,
        not_a_server_error,
        response_schema_conformance,
        status_code_conformance,
    )

    operation = schema[f"/api/v1/tenants/{{tenant_slug}}/copilot/{feature}/"]["POST"]
    in_scope = str(tenant_a.companies[1].pk)
    seen = set()

    @settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck), database=None, derandomize=True)
    @given(case=operation.as_strategy())
    def run(case):
        case.path_parameters = {"tenant_slug": "alpha"}
        if isinstance(case.body, dict) and int(case.body.get("company", "1")[-1:] or 0) % 2 == 0:
            case.body["company"] = in_scope
        response = case.call(headers={"Authorization": f"Bearer {token}"})
        seen.add(response.status_code)
        case.validate_response(response, checks=[not_a_server_error, status_code_conformance,
                                                 content_type_conformance, response_schema_conformance])

    run()
    assert 200 in seen and 403 in seen


# --- the playground page -----------------------------------------------------------------------------------


def playground(slug="alpha"):
    return reverse("copilot:playground", kwargs={"tenant_slug": slug})


def test_playground_shows_each_feature_with_its_refusal(client, tenant_a, us_deployment):
    tenant_a.tenant.feature_switches = {"summarize": True, "time-entry": False, "prioritize": True}
    tenant_a.tenant.save()
    client.force_login(tenant_a.members["tech"].user)
    body = client.get(playground()).content.decode()
    assert 'data-testid="feature-summarize"' in body and "feature_disabled" in body
    assert 'name="feature" value="time-entry"' not in body  # a refused feature cannot be submitted
    client.force_login(tenant_a.members["auditor"].user)
    body = client.get(playground()).content.decode()
    assert body.count("permission_denied") == 2 and "feature_disabled" in body  # the chain order again
    assert 'name="feature" value=' not in body


def test_playground_runs_a_feature_through_htmx(client, tenant_a, us_deployment, sim):
    client.force_login(tenant_a.members["comanaged"].user)
    form = {"company": tenant_a.companies[0].pk, "first_name": "Ana", "summary": "Mail is down",
            "reply": "Since 9:00", "internal_note": "NOTE-NEVER-SENT", "feature": "prioritize"}
    response = client.post(playground(), form, HTTP_HX_REQUEST="true")
    body = response.content.decode()
    assert response.status_code == 200 and 'data-testid="copilot-answer"' in body and "<html" not in body
    record = UsageRecord.objects.for_tenant(tenant_a.tenant).get()
    assert record.request_id in body and record.feature == "prioritize"
    assert "NOTE-NEVER-SENT" not in json.dumps(sim.requests())
    # A company outside the co-managed scope is not even offered.
    refused = client.post(playground(), {**form, "company": tenant_a.companies[1].pk}, HTTP_HX_REQUEST="true")
    assert "copilot-answer" not in refused.content.decode()


def test_playground_shows_refusals_and_upstream_errors(client, tenant_a, us_deployment, sim):
    client.force_login(tenant_a.members["tech"].user)
    form = {"company": tenant_a.companies[2].pk, "summary": "Disk full", "feature": "summarize"}
    sim.set_behaviour("content_filter_prompt", categories=["violence"])
    body = client.post(playground(), form, HTTP_HX_REQUEST="true").content.decode()
    assert "content_filtered" in body and "violence" in body
    tenant_a.tenant.copilot_enabled = False
    tenant_a.tenant.save()
    body = client.post(playground(), form).content.decode()  # without htmx: the whole page
    assert "<html" in body and "copilot_disabled" in body
