"""End to end through Debian's chromium, as the Compliance Auditor: the log reads in sentences
with names, an entry has a page of its own linked to its object's history, and the auditor
reads the directory (users, roles, the roles x permissions matrix) without a way to change it."""

import re

import pytest

from copilot_admin.access.models import SecurityRole
from copilot_admin.directory import services
from tests.browser.test_admin_flow import browser_page, log_in, nav_link  # noqa: F401

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]

SENTENCE = "admin@alpha.test changed user tech@alpha.test: role Technician → Compliance Auditor"


def test_auditor_reads_the_log_an_entry_and_the_directory(browser_page, tenant_a):  # noqa: F811
    from playwright.sync_api import expect

    tech = tenant_a.members["tech"]
    auditor_role = SecurityRole.objects.for_tenant(tenant_a.tenant).get(name="Compliance Auditor")
    services.membership_update(actor=tenant_a.members["admin"], membership=tech, role=auditor_role)

    page = browser_page
    log_in(page, "auditor@alpha.test")

    # 1. The log: what happened, in one sentence, with names.
    nav_link(page, "Audit log").click()
    expect(page).to_have_url(re.compile(r"/t/alpha/audit/$"))
    row = page.get_by_test_id("audit-table").locator("tbody tr").filter(has_text=SENTENCE)
    expect(row).to_have_count(1)
    # The action filter offers the actions by name with their counts (the value stays the code).
    expect(page.get_by_label("Action")).to_contain_text("User changed (")
    expect(page.get_by_label("Action").locator('option[value="membership.update"]')).to_have_count(1)

    # 2. The entry's own page, linked to the object's history.
    row.get_by_role("link", name="Details").click()
    expect(page).to_have_url(re.compile(r"/t/alpha/audit/\d+/$"))
    expect(page.get_by_test_id("entry-sentence")).to_have_text(SENTENCE)
    changes = page.get_by_test_id("audit-changes")
    expect(changes).to_contain_text("Technician")
    expect(changes).to_contain_text("Compliance Auditor")
    page.get_by_test_id("object-history").click()
    expect(page).to_have_url(re.compile(rf"/t/alpha/audit/\?user={tech.pk}$"))
    expect(page.get_by_test_id("audit-table").locator("tbody tr").filter(has_text=SENTENCE)).to_have_count(1)

    # 3. The directory, read-only: the user, then the roles and the permission matrix.
    nav_link(page, "Users").click()
    expect(page).to_have_url(re.compile(r"/t/alpha/users/$"))
    expect(page.get_by_role("link", name="Invite user")).to_have_count(0)
    page.get_by_test_id("user-table").locator("tbody tr").filter(has_text="tech@alpha.test").get_by_role(
        "link", name="View").click()
    expect(page.get_by_test_id("read-only")).to_be_visible()
    expect(page.get_by_role("button", name="Save")).to_have_count(0)
    nav_link(page, "Security roles").click()
    expect(page.get_by_role("link", name="New role")).to_have_count(0)
    page.get_by_role("link", name=re.compile("Permission matrix")).click()
    matrix = page.get_by_test_id("role-matrix")
    expect(matrix).to_contain_text("Compliance Auditor")
    expect(matrix).to_contain_text("directory.view")
