"""README's facts about the demo match the seed (issue 14): tenants, plans, zones and how many
client companies each has."""

from pathlib import Path

from django.conf import settings

from copilot_admin.platform.management.commands.seed_demo import DEMO_TENANTS

README = Path(settings.BASE_DIR) / "README.md"


def test_readme_names_each_tenant_with_its_zone_plan_and_company_count():
    text = " ".join(README.read_text().split())
    for spec in DEMO_TENANTS:
        assert f"`{spec['slug']}` (zone {spec['zone']}, plan {spec['plan'].label}" in text, spec["slug"]
    counts = {spec["slug"]: len(spec["companies"]) for spec in DEMO_TENANTS}
    assert counts == {"northwind": 3, "contoso": 3, "fabrikam": 2}
    assert "Northwind and Contoso have three client companies, Fabrikam two" in text


def test_site_url_follows_the_port(monkeypatch):
    import importlib

    import copilot_admin.settings as project_settings

    monkeypatch.setenv("PORT", "9123")
    monkeypatch.delenv("SITE_URL", raising=False)
    try:
        assert importlib.reload(project_settings).SITE_URL == "http://127.0.0.1:9123"
    finally:
        monkeypatch.delenv("PORT")
        importlib.reload(project_settings)
