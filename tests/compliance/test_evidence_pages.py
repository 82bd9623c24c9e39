"""The data-exchange record (generated from the minimizer and the zone's deployments, so it
cannot drift from the code) and the checkpoints' API and page."""

import json

from copilot_admin.audit.services import audit_seal
from copilot_admin.compliance import exchange
from copilot_admin.compliance.exchange import data_exchange_record, fields_leaving
from copilot_admin.copilot.minimize import minimize_payload
from copilot_admin.regions.models import AuthMode, AzureDeployment, DataZone
from tests.conftest import api_client_for

EXCHANGE_API = "/api/v1/tenants/alpha/data-exchange/"
CHECKPOINTS_API = "/api/v1/tenants/alpha/audit/checkpoints/"


def deployment(zone_code, name, *, endpoint="https://alpha-res.openai.azure.com", auth=AuthMode.API_KEY, active=True):
    return AzureDeployment.objects.create(
        zone=DataZone.objects.get(code=zone_code), name=name, endpoint=endpoint, deployment="gpt-4o",
        auth_mode=auth, api_key_env="AZURE_OPENAI_KEY_TEST", active=active,
    )


def test_fields_leaving_are_what_the_minimizer_keeps():
    paths = [f["path"] for f in fields_leaving()]
    assert paths == ["today", "contact.first_name", "contact.last_name", "contact.type", "issue.summary",
                     "issue.description", "issue.conversation[].author", "issue.conversation[].at",
                     "issue.conversation[].body"]
    assert not any("email" in path or "id" in path.split(".")[-1] for path in paths)


def test_changing_the_allow_list_changes_the_record(tenant_a, monkeypatch):
    """A test double of the minimizer that also lets the contact's e-mail through: the
    record shows it at once (nothing is written by hand)."""

    def leaky(*, body, today=None):
        payload = minimize_payload(body=body, today=today)
        original = payload.as_prompt_data()

        class Leaky:
            def as_prompt_data(self):
                return {**original, "contact": {**original["contact"], "email": body["contact"]["email"]}}

        return Leaky()

    record = data_exchange_record(tenant=tenant_a.tenant, minimizer=leaky)
    assert "contact.email" in [f["path"] for f in record["fields_leaving"]]
    assert "contact.email" not in [f["path"] for f in data_exchange_record(tenant=tenant_a.tenant)["fields_leaving"]]
    # The copilot's minimizer replaced where the record reads it: the page and API change too.
    monkeypatch.setattr(exchange, "minimize_payload", leaky)
    response = api_client_for(tenant_a.members["auditor"].user).get(EXCHANGE_API)
    assert "contact.email" in [f["path"] for f in response.json()["fields_leaving"]]


def test_recipients_are_the_active_deployments_of_the_tenants_zone(tenant_a):
    zone = tenant_a.tenant.zone.code
    other = DataZone.objects.exclude(code=zone).first()
    deployment(zone, "alpha-primary")
    deployment(zone, "alpha-entra", endpoint="https://alpha-two.openai.azure.com/", auth=AuthMode.ENTRA_ID)
    deployment(zone, "alpha-off", active=False)
    if other is not None:
        deployment(other.code, "elsewhere")
    record = data_exchange_record(tenant=tenant_a.tenant)
    names = {r["name"]: r for r in record["recipients"]}
    assert set(names) >= {"alpha-primary", "alpha-entra"} and "alpha-off" not in names and "elsewhere" not in names
    assert names["alpha-primary"]["tls"] and "API key" in names["alpha-primary"]["auth"]
    assert "Entra ID" in names["alpha-entra"]["auth"] and names["alpha-entra"]["host"] == "alpha-two.openai.azure.com"
    assert record["zone"]["code"] == zone and record["stored_here"]["content"] is False
    columns = record["stored_here"]["metadata_columns"]
    assert "prompt_tokens" in columns and not {"prompt", "completion", "summary", "description", "body"} & set(columns)


def test_data_exchange_api_and_printable_page_with_inline_svg(client, tenant_a):
    deployment(tenant_a.tenant.zone.code, "alpha-primary")
    response = api_client_for(tenant_a.members["auditor"].user).get(EXCHANGE_API)
    assert response.status_code == 200 and response.json()["recipients"][0]["name"] == "alpha-primary"
    client.force_login(tenant_a.members["auditor"].user)
    body = client.get("/t/alpha/compliance/data-exchange/").content.decode()
    assert "<svg" in body and "alpha-primary" in body and "Initial description" in body
    assert "<script" not in body.split("<svg", 1)[1].split("</svg>", 1)[0]
    assert ' style="' not in body.split("<svg", 1)[1].split("</svg>", 1)[0]  # CSP: no inline styles


def test_checkpoints_api_lists_and_downloads_the_tenants_checkpoints_only(tenant_a, tenant_b):
    audit_seal()
    client = api_client_for(tenant_a.members["auditor"].user)
    body = client.get(CHECKPOINTS_API).json()
    assert body["chain"] == f"tenant:{tenant_a.tenant.pk}" and body["tenant"] == "alpha" and body["results"]
    assert set(body["results"][0]) == {"sequence", "head_hash", "at", "signature", "key_id"}
    sequences = [c["sequence"] for c in body["results"]]
    assert sequences == sorted(sequences)
    download = client.get(CHECKPOINTS_API, {"download": "true", "limit": 1})
    assert download.status_code == 200 and "attachment;" in download["Content-Disposition"]
    assert json.loads(download.content)["results"] == body["results"][-1:]
    assert client.get(CHECKPOINTS_API, {"limit": 0}).status_code == 400
    assert api_client_for(tenant_a.members["auditor"].user).get(
        "/api/v1/tenants/bravo/audit/checkpoints/").status_code == 404


def test_checkpoints_page(client, tenant_a):
    audit_seal()
    client.force_login(tenant_a.members["auditor"].user)
    body = client.get("/t/alpha/compliance/checkpoints/").content.decode()
    assert "audit_verify --checkpoints" in body and "download=true" in body and "<td>" in body
