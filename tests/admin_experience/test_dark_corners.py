"""Issue 14, `make run`'s dark corners: a favicon on every page, and a 500 page styled like the others."""

import re
from pathlib import Path

from django.conf import settings
from django.template.loader import render_to_string


def test_pages_name_a_favicon_that_exists(client):
    page = client.get("/login/").content.decode()
    assert 'rel="icon"' in page and "img/favicon.svg" in page
    assert (Path(settings.BASE_DIR) / "static" / "img" / "favicon.svg").exists()


def test_the_500_page_is_styled_like_the_others_without_a_request():
    html = render_to_string("500.html")
    assert "vendor/bootstrap/bootstrap.min.css" in html and "navbar" in html and "Back to start" in html
    assert "img/favicon.svg" in html


MAKEFILE = Path(settings.BASE_DIR) / "Makefile"
README = Path(settings.BASE_DIR) / "README.md"


def test_make_run_serves_with_debug_off_unless_asked():
    text = MAKEFILE.read_text()
    assert "\nDJANGO_DEBUG ?= false\n" in text
    run = re.search(r"^run: .*\n\t(.*)$", text, re.MULTILINE).group(1)
    assert "DJANGO_DEBUG=$(DJANGO_DEBUG)" in run and "COPILOT_SIMULATOR=1" in run and "runserver" in run


def test_with_debug_off_static_files_are_served_and_errors_use_the_project_pages(client):
    assert settings.DEBUG is False and settings.WHITENOISE_USE_FINDERS is True
    css = client.get("/static/vendor/bootstrap/bootstrap.min.css")
    assert css.status_code == 200 and css["Content-Type"].startswith("text/css")
    assert client.get("/static/img/favicon.svg").status_code == 200
    missing = client.get("/t/nowhere/no-such-page/")
    page = missing.content.decode()
    assert missing.status_code == 404 and "vendor/bootstrap/bootstrap.min.css" in page and "Traceback" not in page
    assert "Using the URLconf defined in" not in page  # Django's technical 404 page


def test_settings_serve_static_files_without_collectstatic_outside_production(monkeypatch):
    import importlib

    import copilot_admin.settings as project_settings

    monkeypatch.setenv("DJANGO_DEBUG", "false")
    monkeypatch.delenv("DJANGO_ENV", raising=False)
    try:
        reloaded = importlib.reload(project_settings)
        assert (reloaded.DEBUG, reloaded.WHITENOISE_USE_FINDERS) == (False, True)
    finally:
        monkeypatch.delenv("DJANGO_DEBUG")
        importlib.reload(project_settings)


def test_readme_documents_django_debug_for_development_errors():
    text = " ".join(README.read_text().split())
    assert "serves with `DJANGO_DEBUG=false`" in text
    assert "`make run DJANGO_DEBUG=true` shows Django's development error pages" in text
    row = re.search(r"\| `DJANGO_DEBUG` \|[^\n]*", README.read_text()).group(0)
    assert "off with `make run`" in row and "development error" in row


def readme_accounts() -> dict[str, str]:
    """README's demo-accounts table: account -> what it says the account is."""
    section = README.read_text().split("## Demo accounts", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\| `([^`]+)` \| (.+?) \|$", section, re.MULTILINE)
    return dict(rows)


def test_readme_demo_accounts_table_matches_the_seed(db, settings):
    import os

    from django.core.management import call_command

    from copilot_admin.platform.management.commands.seed_demo import DEMO_TENANTS, DEMO_USERS
    from tenants.models import Membership, User

    settings.COPILOT_SIMULATOR = True
    with open(os.devnull, "w") as quiet:
        call_command("seed_demo", stdout=quiet)
    table = readme_accounts()
    operators = [email for email, what in table.items() if what.startswith("platform operator")]
    assert operators == [e for e in User.objects.filter(is_platform_operator=True).values_list("email", flat=True)]
    members = {email: what for email, what in table.items() if email.endswith("@<slug>.example")}
    assert sorted(members) == sorted(f"{local}@<slug>.example" for local, *_ in DEMO_USERS)
    for local, role_name, user_type, _ in DEMO_USERS:
        assert members[f"{local}@<slug>.example"].split(",")[0] == role_name
        for spec in DEMO_TENANTS:
            membership = Membership.objects.unscoped().select_related("role", "tenant").get(
                user__email=f"{local}@{spec['slug']}.example", tenant__slug=spec["slug"])
            assert (membership.role.name, membership.user_type) == (role_name, user_type)
            assert membership.user.check_password(os.environ.get("DEMO_PASSWORD", "copilot-demo"))
    assert "The password of every demo account is `copilot-demo`" in " ".join(README.read_text().split())
