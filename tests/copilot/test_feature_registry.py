"""A copilot feature is declared once: a fourth one, declared here (with its prompt template)
and nowhere else, joins the permission catalogue and the role editor's matrix, can be granted
to a role and switched on for a tenant, gets its own route, view, documented answer and usage
filter, and answers end to end through the simulator. Nothing else in the project is edited."""

import importlib

import pytest
from django.urls import clear_url_caches, resolve, reverse

from copilot_admin.access.permissions import all_permissions, copilot_grants, feature_choices, modules
from copilot_admin.copilot.features import FEATURES, Feature, feature_register, feature_unregister
from copilot_admin.copilot.prompts import PROMPT_TEMPLATES, PromptTemplate
from copilot_admin.usage.models import UsageRecord
from tests.conftest import api_client_for, build_tenant
from tests.factories import add_member
from tests.regions.fixtures import deployment_factory  # noqa: F401

ROUTES = ("copilot_admin.copilot.urls", "copilot_admin.api_urls", "copilot_admin.urls")


def _load_routes() -> None:
    """Build the URL configuration again from the declared features (as a starting process does)."""
    for name in ROUTES:
        importlib.reload(importlib.import_module(name))
    clear_url_caches()


@pytest.fixture
def translate(monkeypatch):
    """The fourth feature: one declaration and its prompt template, for this test only."""
    monkeypatch.setitem(PROMPT_TEMPLATES, "translate/v1", PromptTemplate(
        version="translate/v1",
        system="Translate the ticket for a technician. - text: the translation. - language: its language code.",
        user_intro="Translate this ticket:",
    ))
    feature = feature_register(Feature(
        slug="translate",
        label="Translate ticket",
        grant_label="Translate tickets",
        description="Translate a ticket: `text`, `language`.",
        prompt_version="translate/v1",
        output={
            "text": {"type": "string", "description": "The ticket in the technician's language."},
            "language": {"type": "string", "enum": ["en", "de", "fr"]},
        },
        max_completion_tokens=400,
    ))
    _load_routes()
    yield feature
    feature_unregister("translate")
    _load_routes()


@pytest.fixture
def world(translate, db):
    """A tenant made after the feature was declared (its system roles are seeded from the catalogue)."""
    return build_tenant("alpha", "Alpha MSP")


def test_the_declaration_joins_the_catalogue_and_the_role_editor(translate, world, client):
    assert "copilot.translate" in all_permissions() and "copilot.translate" in copilot_grants()
    assert ("translate", "Translate ticket") in feature_choices()
    assert modules()[-1].permissions[-1] == ("copilot.translate", "Translate tickets")
    client.force_login(world.members["admin"].user)
    page = client.get(reverse("access:role_create", kwargs={"tenant_slug": "alpha"})).content.decode()
    assert 'value="copilot.translate"' in page and "Translate tickets" in page


def test_the_grant_is_given_to_roles_within_the_co_managed_ceiling(translate, world):
    admin = api_client_for(world.members["admin"].user)
    for user_type in ("internal", "co_managed"):
        created = admin.post("/api/v1/tenants/alpha/roles/", {
            "name": f"Translators {user_type}", "user_type": user_type, "permissions": ["copilot.translate"],
        }, format="json")
        assert created.status_code == 201, created.content
        assert created.json()["permissions"] == ["copilot.translate"]


def test_the_feature_has_its_route_view_and_documented_answer(translate, world):
    match = resolve("/api/v1/tenants/alpha/copilot/translate/")
    assert match.view_name == "api:copilot-translate"
    assert match.func.view_class.__name__ == "TranslateView"
    assert match.func.view_class.permissions == {"post": "copilot.translate"}
    schema = api_client_for(None).get(reverse("schema"), HTTP_ACCEPT="application/vnd.oai.openapi+json").json()
    operation = schema["paths"]["/api/v1/tenants/{tenant_slug}/copilot/translate/"]["post"]
    assert (operation["operationId"], operation["summary"]) == ("copilot_translate", "Translate ticket")
    assert operation["description"] == "Translate a ticket: `text`, `language`."
    answer = operation["responses"]["200"]["content"]["application/json"]["schema"]["$ref"]
    assert answer == "#/components/schemas/TranslateResult"
    result = schema["components"]["schemas"]["TranslateResult"]
    assert list(result["properties"]) == ["request_id", "zone", "usage", "text", "language"]
    assert {"403", "429", "503"} <= set(operation["responses"])


def test_the_call_works_end_to_end_against_the_simulator(translate, world, deployment_factory, simulator_url, sim):
    deployment_factory(zone="us", name="us-primary", endpoint=simulator_url, deployment="dep-us", priority=1)
    admin = api_client_for(world.members["admin"].user)
    switched = admin.patch("/api/v1/tenants/alpha/settings/", {"features": {"translate": True}}, format="json")
    assert switched.status_code == 200 and switched.json()["features"]["translate"] is True
    role = admin.post("/api/v1/tenants/alpha/roles/", {
        "name": "Translators", "user_type": "internal", "permissions": ["copilot.translate"]}, format="json")
    assert role.status_code == 201
    member = add_member(world.tenant, "Translators", email="translator@alpha.test")
    body = {"company": str(world.companies[0].pk), "issue": {"summary": "Drucker druckt nicht"}}

    response = api_client_for(member.user).post("/api/v1/tenants/alpha/copilot/translate/", body, format="json")

    assert response.status_code == 200, response.content
    answer = response.json()
    assert set(answer) == {"text", "language", "request_id", "zone", "usage"}
    assert answer["language"] in {"en", "de", "fr"}
    (sent,) = sim.requests()
    assert sent["body"]["response_format"] == FEATURES["translate"].response_format()
    assert UsageRecord.objects.for_tenant(world.tenant).get().feature == "translate"
    usage = admin.get("/api/v1/tenants/alpha/usage/?feature=translate")
    assert usage.status_code == 200 and [row["feature"] for row in usage.json()["per_feature"]] == ["translate"]
    refused = api_client_for(world.members["auditor"].user).post(
        "/api/v1/tenants/alpha/copilot/translate/", body, format="json")
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "permission_denied"


def test_a_feature_is_declared_once(translate):
    with pytest.raises(ValueError):
        feature_register(translate)
