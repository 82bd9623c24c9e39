"""Issue 14: a plan without the copilot (the demo's Fabrikam, plan ITSM). Every copilot page
(the copilot and usage rooms) says at the top that the copilot is not included in the plan and
why nothing there takes effect; the copilot switches are read-only; the playground offers no
feature. Tenants whose plan includes the copilot see none of it."""

import os
import re

import pytest
from django.core.management import call_command
from django.urls import reverse

from copilot_admin.copilot.context_processors import COPILOT_PAGE_NAMESPACES
from copilot_admin.copilot.features import FEATURES
from tenants.models import ClientCompany, Tenant
from tests.admin_experience.pagewalk import demo_world, tenant_page_urls, visible_text
from tests.cross.routes import TENANT_PAGES

NOTICE = "The copilot is not included in Fabrikam Support's ITSM plan."
COPILOT_PAGES = {name for name in TENANT_PAGES if name.split(":")[0] in COPILOT_PAGE_NAMESPACES}


@pytest.fixture
def demo(db, settings):
    settings.COPILOT_SIMULATOR = True
    with open(os.devnull, "w") as quiet:
        call_command("seed_demo", stdout=quiet)
    return demo_world("fabrikam")


def copilot_page_urls(world, member) -> list[str]:
    """The copilot pages (the copilot and usage rooms) `member` may open."""
    return tenant_page_urls(world, member, only=COPILOT_PAGES)


def test_the_walk_covers_every_copilot_page():
    assert COPILOT_PAGES >= {"copilot:playground", "copilot:settings", "usage:dashboard", "usage:limits",
                             "usage:abuse_cases", "usage:notifications", "usage:webhooks"}


@pytest.mark.parametrize("role", ["admin", "tech", "auditor"])
def test_every_copilot_page_says_the_plan_does_not_include_the_copilot(client, demo, role):
    member = demo.members[role]
    client.force_login(member.user)
    urls = copilot_page_urls(demo, member)
    assert urls, role
    if role == "admin":
        assert len(urls) == len(COPILOT_PAGES), sorted(urls)
    for url in urls:
        response = client.get(url)
        assert response.status_code == 200, url
        page = response.content.decode()
        assert page.count('data-testid="not-in-plan"') == 1, url
        assert NOTICE in visible_text(page), url


def test_pages_outside_the_copilot_and_tenants_with_the_copilot_have_no_notice(client, demo):
    client.force_login(demo.members["admin"].user)
    assert 'data-testid="not-in-plan"' not in client.get("/t/fabrikam/users/").content.decode()
    overview = client.get("/t/fabrikam/").content.decode()
    assert 'data-testid="overview-not-in-plan"' in overview and "Fabrikam Support's ITSM plan" in overview
    northwind = demo_world("northwind")
    client.force_login(northwind.members["admin"].user)
    for url in copilot_page_urls(northwind, northwind.members["admin"]):
        page = client.get(url).content.decode()
        assert "not-in-plan" not in page and "not included" not in page, url
    assert 'data-testid="overview-not-in-plan"' not in client.get("/t/northwind/").content.decode()


def test_the_copilot_switches_are_read_only_and_cannot_be_turned_on(client, demo):
    client.force_login(demo.members["admin"].user)
    url = reverse("copilot:settings", kwargs={"tenant_slug": "fabrikam"})
    page = client.get(url).content.decode()
    switches = ["copilot_enabled", *(f"feature_{slug}" for slug in FEATURES)]
    for name in switches:
        assert re.search(rf'name="{name}" id="id_{name}"( checked)? disabled>', page), name
    assert not re.search(r'id="id_mfa_required"( checked)? disabled>', page)
    assert 'data-testid="switches-read-only"' in page
    client.post(url, {name: "on" for name in switches})
    tenant = Tenant.objects.get(slug="fabrikam")
    assert tenant.copilot_enabled is False


def test_the_playground_offers_no_feature_and_says_why(client, demo):
    client.force_login(demo.members["admin"].user)
    url = reverse("copilot:playground", kwargs={"tenant_slug": "fabrikam"})
    page = client.get(url).content.decode()
    for slug in FEATURES:
        assert re.search(rf'<button type="button" class="[^"]*" disabled title="[^"]*" data-testid="feature-{slug}">', page)
        assert f'data-testid="preview-{slug}"' not in page
    assert page.count("Not in the ITSM plan") == len(FEATURES)
    company = ClientCompany.objects.for_tenant(demo.tenant).order_by("pk").first()
    refused = client.post(url, {"company": company.pk, "summary": "Printer offline", "feature": "summarize"})
    text = visible_text(refused.content.decode())
    assert "The copilot is not included in the ITSM plan; the platform operator sets the plan." in text
