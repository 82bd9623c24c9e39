"""Single sign-on in Debian's chromium against the real OpenID Connect provider on loopback: the
administrator configures it, the operator approves the domain, a technician signs in with the
e-mail first and "Sign in with Microsoft"."""

import re

import pytest

from tenants.models import User
from tests.browser.test_admin_flow import browser_page, log_in  # noqa: F401  (the fixture and the login steps)
from tests.factories import PASSWORD
from tests.identity.conftest import CLIENT_ID, SECRET_ENV, start_provider, stop_provider

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]


@pytest.fixture
def provider_for_live_server(live_server, monkeypatch):
    monkeypatch.setenv(SECRET_ENV, "loopback-test-secret")
    provider = start_provider([f"{live_server.url}/login/sso/callback/"])
    yield provider
    stop_provider(provider)


def log_out(page):
    from playwright.sync_api import expect

    page.get_by_role("button", name=re.compile("Log out")).click()
    expect(page).to_have_url(re.compile(r"/login/$"))  # the logout's navigation is over


def test_admin_configures_sso_operator_approves_and_a_technician_signs_in(
    browser_page,  # noqa: F811  (the imported fixture)
    tenant_a,
    operator,
    provider_for_live_server,
):
    from playwright.sync_api import expect

    page = browser_page
    provider = provider_for_live_server
    operator.set_password(PASSWORD)
    operator.save()

    # 1. The tenant administrator configures single sign-on.
    log_in(page, "admin@alpha.test")
    page.get_by_role("link", name="Single sign-on").click()
    page.get_by_label("Single sign-on enabled").check()
    page.get_by_label("Issuer (discovery) URL").fill(provider.issuer)
    page.get_by_label("Client (application) id").fill(CLIENT_ID)
    page.get_by_label("Client secret: environment variable").fill(SECRET_ENV)
    page.get_by_label("E-mail domains").fill("alpha.test")
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_text("Single sign-on settings were saved.")).to_be_visible()
    expect(page.get_by_test_id("sso-domains")).to_contain_text("awaiting operator approval")
    log_out(page)

    # 2. The platform operator approves the domain.
    page.get_by_label("E-mail").fill(operator.email)
    page.get_by_role("button", name="Continue").click()
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.get_by_role("link", name="SSO domains").click()
    page.get_by_role("button", name="Approve alpha.test").click()
    expect(page.get_by_text("alpha.test (Alpha MSP): approved.")).to_be_visible()
    log_out(page)

    # 3. A technician: e-mail first, then the provider, back signed in.
    page.get_by_label("E-mail").fill("tech@alpha.test")
    page.get_by_role("button", name="Continue").click()
    page.get_by_role("button", name="Sign in with Microsoft").click()
    expect(page).to_have_url(re.compile(r"/t/alpha/$"))
    expect(page.get_by_role("heading", name="Alpha MSP", exact=True)).to_be_visible()
    assert User.objects.get(email="tech@alpha.test").last_login is not None
