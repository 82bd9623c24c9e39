"""End to end through Debian's chromium: log in, invite a user (with a hostile name), change
its role, log out; and a technician, who has no user administration, is kept out.

Runs against pytest-django's `live_server`, so the database is transactional; the marker asks
for a serialized rollback so the zones seeded by migrations are there for every test.
"""

import os
import re
from pathlib import Path

import pytest
from django.db import connections

from copilot_admin.directory import services
from tenants.models import Membership, User
from tests.conftest import require_service
from tests.copilot.conftest import sim, simulator_url  # noqa: F401
from tests.factories import PASSWORD
from tests.regions.fixtures import deployment_factory  # noqa: F401

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-quic",
    "--no-first-run",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
TIMEOUT_MS = 15_000

HOSTILE_NAME = "<script>window.__xss=1</script>Eve"
INVITEE = "eve@alpha.test"

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]


@pytest.fixture
def browser_page(live_server, monkeypatch):
    """A fresh chromium page pointed at the live server; fails the test on any script error,
    any Content-Security-Policy violation or any failed request (a missing vendored asset
    shows up here)."""
    require_service("chromium", os.access(CHROMIUM, os.X_OK), f"{CHROMIUM} is missing (apt-get install -y chromium)")
    from playwright.sync_api import expect, sync_playwright

    # Playwright's sync API keeps an event loop running in this thread; the ORM calls the test
    # (and the database teardown) make from here are still synchronous.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    expect.set_options(timeout=TIMEOUT_MS)
    problems: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        context = browser.new_context(base_url=live_server.url, viewport={"width": 1366, "height": 900})
        context.set_default_timeout(TIMEOUT_MS)
        page = context.new_page()
        page.on("pageerror", lambda error: problems.append(f"page error: {error}"))
        # The Content-Security-Policy (settings.CONTENT_SECURITY_POLICY): chromium reports a
        # blocked inline script, style or foreign resource on the console.
        page.on(
            "console",
            lambda message: problems.append(f"CSP violation: {message.text}")
            if message.type == "error" and "Content Security Policy" in message.text
            else None,
        )
        # The favicon is fetched lazily after the load event; a navigation right then aborts it
        # (net::ERR_ABORTED), which says nothing about the app. Any other failed request counts.
        page.on(
            "requestfailed",
            lambda request: None
            if request.url.endswith("/favicon.svg") and "ERR_ABORTED" in (request.failure or "")
            else problems.append(f"request failed: {request.url} {request.failure}"),
        )
        page.on(
            "response",
            lambda response: problems.append(f"HTTP {response.status}: {response.url}")
            if response.status >= 400
            and response.request.resource_type != "document"
            and not response.url.endswith("/favicon.ico")  # chromium asks; the app has none
            else None,
        )
        try:
            yield page
        finally:
            context.close()
            browser.close()
            # The connections the test opened while Playwright's loop ran belong to that loop's
            # context, which Django's own teardown never sees: closed (back to the pool) here,
            # or one stays checked out and the test database cannot be dropped at the end.
            connections.close_all()
    assert problems == [], "the browser saw problems:\n" + "\n".join(problems)


def log_in(page, email: str) -> None:
    from playwright.sync_api import expect

    page.goto("/login/")
    expect(page.get_by_role("heading", name="Log in")).to_be_visible()
    # E-mail first (the next step offers the organization's single sign-on, or the password).
    page.get_by_label("E-mail").fill(email)
    page.get_by_role("button", name="Continue").click()
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    # The user's only tenant: the home page redirects straight to its overview.
    expect(page).to_have_url(re.compile(r"/t/alpha/$"))
    expect(page.get_by_role("heading", name="Alpha MSP", exact=True)).to_be_visible()


def nav_link(page, label: str):
    """A sidebar link by its text. Its accessible name starts with the Bootstrap icon's glyph
    (a private-use character the icon font puts in ::before), hence the pattern."""
    return page.get_by_role("complementary").get_by_role("link", name=re.compile(rf"^\W*{re.escape(label)}$"))


def user_row(page, email: str):
    """The users list's row of `email`; for an administrator its first cell is the bulk-select box."""
    return page.get_by_test_id("user-table").locator("tbody tr").filter(has_text=email)


def test_admin_invites_edits_and_logs_out(browser_page, tenant_a):
    from playwright.sync_api import expect

    page = browser_page
    log_in(page, "admin@alpha.test")

    # 1. Users → Invite user, with markup in the name.
    nav_link(page, "Users").click()
    expect(page).to_have_url(re.compile(r"/t/alpha/users/$"))
    page.get_by_role("link", name="Invite user").click()
    expect(page).to_have_url(re.compile(r"/t/alpha/users/new/$"))
    # Co-managed companies are offered one checkbox each (only the co-managed ones).
    expect(page.get_by_role("checkbox", name="Alpha MSP Client One")).not_to_be_checked()
    expect(page.get_by_role("checkbox", name="Alpha MSP Client Two")).not_to_be_checked()
    expect(page.get_by_role("checkbox", name="Alpha MSP Client Three")).to_have_count(0)
    page.get_by_label("E-mail", exact=True).fill(INVITEE)
    page.get_by_label("Name").fill(HOSTILE_NAME)
    page.get_by_label("User type").select_option(label="Internal")
    page.get_by_label("Role").select_option(label="Technician")
    page.get_by_role("button", name="Invite").click()

    expect(page).to_have_url(re.compile(r"/t/alpha/users/$"))
    expect(page.get_by_role("alert")).to_contain_text(f"{INVITEE} was invited")
    row = user_row(page, INVITEE)
    expect(row).to_have_count(1)
    # Pending: no name, marked invited, until the invitee sets its password (accepting).
    expect(row.locator("td").nth(1)).to_have_text("—")
    expect(row.locator("td").nth(6)).to_have_text(re.compile(r"^invited \d{4}-\d{2}-\d{2}$"))
    services.membership_accept_created_account(user=User.objects.get(email=INVITEE))
    page.reload()
    row = user_row(page, INVITEE)
    expect(row.locator("td").nth(6)).to_have_text("active")
    expect(row.locator("td").nth(1)).to_have_text(HOSTILE_NAME)  # shown literally, as text
    expect(row.locator("td").nth(3)).to_have_text("Internal")
    expect(row.locator("td").nth(4)).to_have_text("Technician")
    assert "<script>window.__xss=1</script>Eve" in page.inner_text("body")
    assert page.evaluate("typeof window.__xss") == "undefined"
    assert page.evaluate("[...document.scripts].filter(s => s.textContent.includes('__xss')).length") == 0
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "users.png"), full_page=True)

    # 2. Edit: Technician → Compliance Auditor.
    row.get_by_role("link", name="Edit").click()
    expect(page).to_have_url(re.compile(r"/t/alpha/users/\d+/$"))
    expect(page.get_by_role("heading", level=1)).to_contain_text(HOSTILE_NAME)
    assert page.evaluate("typeof window.__xss") == "undefined"
    expect(page.get_by_label("Active")).to_be_checked()
    page.get_by_label("Role").select_option(label="Compliance Auditor")
    page.get_by_role("button", name="Save").click()

    expect(page).to_have_url(re.compile(r"/t/alpha/users/$"))
    expect(page.get_by_role("alert")).to_contain_text(f"{INVITEE} was updated")
    expect(user_row(page, INVITEE).locator("td").nth(4)).to_have_text("Compliance Auditor")
    membership = Membership.objects.for_tenant(tenant_a.tenant).select_related("user", "role").get(user__email=INVITEE)
    assert membership.role.name == "Compliance Auditor"
    assert membership.user.full_name == HOSTILE_NAME
    assert membership.is_active

    # 3. Log out (a POST form in the navbar): back at the login page, and the pages are closed.
    page.get_by_role("button", name="Log out").click()
    expect(page).to_have_url(re.compile(r"/login/$"))
    expect(page.get_by_role("heading", name="Log in")).to_be_visible()
    page.goto("/t/alpha/users/")
    expect(page).to_have_url(re.compile(r"/login/\?next=/t/alpha/users/$"))
    expect(page.get_by_label("E-mail")).to_be_visible()


def test_technician_has_no_user_administration(browser_page, tenant_a):
    from playwright.sync_api import expect

    page = browser_page
    log_in(page, "tech@alpha.test")
    expect(nav_link(page, "Overview")).to_be_visible()
    expect(nav_link(page, "Client companies")).to_be_visible()
    expect(nav_link(page, "Users")).to_have_count(0)

    response = page.goto("/t/alpha/users/")
    assert response is not None and response.status == 403
    expect(page.get_by_role("heading", name="Not allowed")).to_be_visible()
    expect(page.get_by_test_id("user-table")).to_have_count(0)
    expect(page.get_by_text("tech@alpha.test", exact=True)).to_be_visible()  # still logged in


@pytest.fixture
def us_simulated_deployment(deployment_factory, simulator_url, sim):  # noqa: F811
    return deployment_factory(zone="us", name="us-primary", endpoint=simulator_url, deployment="dep-us", priority=1)


def test_pages_with_scripts_run_under_the_content_security_policy(browser_page, tenant_a, us_simulated_deployment):
    """The pages that run more than Bootstrap (Chart.js on the usage dashboard, htmx in the
    playground, Swagger UI) work with the strict policy: no violation, and they do their job."""
    from playwright.sync_api import expect

    page = browser_page
    log_in(page, "admin@alpha.test")
    nav_link(page, "Copilot playground").click()
    page.get_by_label("Summary").fill("Mail is down")
    page.locator('button[name="feature"][value="prioritize"]').click()
    expect(page.get_by_test_id("copilot-answer")).to_be_visible()

    nav_link(page, "Usage").click()
    expect(page.locator("canvas#chart-days")).to_be_visible()
    # The canvas is laid out before Chart.js has run (scripts load at the end of the page): wait
    # for the chart to exist rather than reading it at once.
    page.wait_for_function("window.Chart !== undefined && Chart.getChart(document.getElementById('chart-days')) !== undefined")

    page.goto("/api/docs/")
    expect(page.locator(".swagger-ui .info .title")).to_contain_text("copilot-admin API")
    expect(page.locator(".opblock").first).to_be_visible()
