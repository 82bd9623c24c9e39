"""Issue 14, words people understand: on every page each demo role reaches, no code or slug shows
in the visible text (feature slugs, permission codes, snake_case codes), and labels are spelled
the same everywhere ("E-mail", "API version", "Authentication"). Codes may appear inside <code>."""

import os

import pytest
from django.core.management import call_command

from copilot_admin.audit.services import audit_event_record
from copilot_admin.copilot.settings_services import tenant_copilot_settings_update
from copilot_admin.usage.services import usage_record_create
from tenants.models import ClientCompany, User
from tests.admin_experience.pagewalk import demo_world, leaks, operator_page_urls, tenant_page_urls, visible_text, walk

ROLES = ["admin", "tech", "comanaged", "auditor"]


@pytest.fixture
def demo(db, settings):
    settings.COPILOT_SIMULATOR = True  # the demo deployments, as `make run` seeds them
    with open(os.devnull, "w") as quiet:
        call_command("seed_demo", stdout=quiet)
    world = demo_world("northwind")
    # A change of feature switches puts feature names into the audit log.
    tenant_copilot_settings_update(actor=world.members["admin"], copilot_enabled=True,
                                   features={"summarize": True, "time-entry": False, "prioritize": True})
    # Calls, one refused by a limit: usage by feature and company, and copilot calls in the audit log.
    tech = world.members["tech"]
    company = ClientCompany.objects.for_tenant(world.tenant).order_by("pk").last()
    for n, (feature, outcome, error_code) in enumerate([("summarize", "ok", ""), ("time-entry", "refused", "rate_limited")]):
        usage_record_create(membership=tech, feature=feature, zone="us", outcome=outcome, error_code=error_code,
                            request_id=f"words-{n}", prompt_tokens=120, completion_tokens=30, company_id=company.pk)
        audit_event_record(tenant=world.tenant, actor=tech.user, action="copilot.call", object_type="copilot.feature",
                           object_id=feature, outcome="success" if outcome == "ok" else "denied",
                           metadata={"feature": feature, "outcome": error_code or "ok"})
    return world


def test_audit_sentences_name_fields_and_features_by_their_labels(client, demo):
    client.force_login(demo.members["auditor"].user)
    page = visible_text(client.get(f"/t/{demo.tenant.slug}/audit/").content.decode())
    assert ("admin@northwind.example changed tenant settings Northwind Managed IT: copilot features "
            "Suggest priority on, Summarize ticket on, Draft time entry on → ") in page


def test_the_rules_catch_codes_and_slugs_in_text_but_not_in_code():
    page = ("<p>Feature time-entry is off (rate_limited)</p><label>Email</label><th>Api version</th>"
            "<td>Auth mode</td><p>Grants copilot.summarize</p><code>rate_limited time-entry</code>"
            "<p>admin@northwind.example AZURE_OPENAI_KEY_US</p>")
    words = [leak.word for leak in leaks("/x/", page)]
    assert sorted(words) == sorted(["time-entry", "rate_limited", "Email", "Api", "Auth", "copilot.summarize"])
    assert "rate_limited" not in visible_text("<code>rate_limited</code>")


@pytest.mark.parametrize("slug,role", [*(("northwind", role) for role in ROLES), ("fabrikam", "admin")])
def test_no_codes_or_slugs_on_the_pages_a_demo_member_reaches(client, demo, slug, role):
    world = demo_world(slug)
    member = world.members[role]
    client.force_login(member.user)
    urls = tenant_page_urls(world, member)
    statuses, found = walk(client, urls)
    assert len(urls) >= 3 and set(statuses.values()) == {200}, statuses
    assert found == [], "\n".join(map(str, found))


def test_no_codes_or_slugs_on_the_pages_the_demo_operator_reaches(client, demo):
    client.force_login(User.objects.get(email="operator@platform.example"))
    urls = operator_page_urls()
    statuses, found = walk(client, urls)
    assert len(urls) >= 10 and set(statuses.values()) == {200}, statuses
    assert found == [], "\n".join(map(str, found))
