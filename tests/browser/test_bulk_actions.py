"""Bulk actions in the browser (issue 14): an administrator filters the users list, ticks every
user shown with the select-all box (static/js/bulk_select.js), sees the count, asks to
deactivate them, reads on the confirmation page how many and what follows, and confirms."""

import re

import pytest

from tenants.models import Membership
from tests.browser.test_accessibility import blocking
from tests.browser.test_admin_flow import ARTIFACTS, browser_page, log_in, nav_link  # noqa: F401
from tests.factories import add_member

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]


def test_admin_deactivates_the_filtered_users_in_one_confirmed_action(browser_page, tenant_a):  # noqa: F811
    from playwright.sync_api import expect

    shifts = [add_member(tenant_a.tenant, "Technician", email=f"night{n}@alpha.test") for n in range(3)]
    page = browser_page
    log_in(page, "admin@alpha.test")
    nav_link(page, "Users").click()
    page.get_by_placeholder("Search name or e-mail").fill("night")
    page.get_by_role("button", name="Filter").click()
    expect(page.get_by_test_id("user-table").locator("tbody tr")).to_have_count(3)
    assert blocking(page) == [], "the users list with its bulk form"

    # With JavaScript the no-JS "Select all on this page" button gives way to a header box.
    expect(page.get_by_role("button", name="Select all on this page")).to_be_hidden()
    page.get_by_role("checkbox", name="Select all users on this page").check()
    expect(page.get_by_text("3 users selected")).to_be_visible()
    page.get_by_role("checkbox", name="Select night1@alpha.test").uncheck()
    expect(page.get_by_text("2 users selected")).to_be_visible()
    page.get_by_role("checkbox", name="Select all users on this page").check()
    expect(page.get_by_text("3 users selected")).to_be_visible()
    page.get_by_role("group", name="Bulk actions on the ticked users").get_by_role("button", name="Deactivate").click()

    expect(page).to_have_url(re.compile(r"/t/alpha/users/bulk/deactivate/\?"))
    expect(page.get_by_role("heading", name="Deactivate 3 users?")).to_be_visible()
    expect(page.get_by_test_id("consequences")).to_contain_text("3 users lose access to Alpha MSP at once")
    expect(page.get_by_test_id("selected-users")).to_contain_text("night2@alpha.test")
    assert Membership.objects.for_tenant(tenant_a.tenant).filter(
        pk__in=[m.pk for m in shifts], is_active=True).count() == 3
    assert blocking(page) == [], "the bulk confirmation page"
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "bulk-confirm.png"), full_page=True)
    page.get_by_role("button", name="Deactivate").click()

    expect(page).to_have_url(re.compile(r"/t/alpha/users/$"))
    expect(page.get_by_role("alert")).to_contain_text("3 users deactivated.")
    assert Membership.objects.for_tenant(tenant_a.tenant).filter(
        pk__in=[m.pk for m in shifts], is_active=False).count() == 3
    assert Membership.objects.for_tenant(tenant_a.tenant).get(user__email="admin@alpha.test").is_active
