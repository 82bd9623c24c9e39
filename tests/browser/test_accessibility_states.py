"""Accessibility of the states a link walk does not reach (issue 14), through Debian's chromium
and the vendored axe-core (tests/browser/test_accessibility.py): forms showing their errors
(without JavaScript validation, as the server answers them; the playground's through htmx),
confirmation pages, empty states, a plan without the copilot, and the navbar opened at phone
width. No violation of impact "serious" or "critical" on any of them."""

import re

import pytest

from copilot_admin.access.models import SecurityRole
from tests.browser.test_accessibility import blocking, log_in_operator
from tests.browser.test_admin_flow import browser_page, log_in  # noqa: F401
from tests.cross.routes import object_pk

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]


def check(page, label: str, seen: dict) -> None:
    """axe on the page as it is now; its blocking violations are kept under `label`. Colour
    transitions are off (reduced motion, which Bootstrap honours) and the pointer rests outside
    the page, so a button is measured in its resting colours, not halfway through a hover."""
    page.emulate_media(reduced_motion="reduce")
    page.mouse.move(0, 0)
    seen[label] = blocking(page)


def report(seen: dict) -> str:
    return "\n".join(f"{label}: {v['id']} ({v['impact']}) {v['help']} at {v['nodes']}"
                     for label, violations in seen.items() for v in violations)


def submit_with_errors(page, path: str, fill: dict | None = None) -> None:
    """Open the form at `path`, switch the browser's own validation off (the server's errors are
    the state checked), fill `fill` (label -> value) and submit the page's main form."""
    from playwright.sync_api import expect

    page.goto(path)
    page.evaluate("document.querySelectorAll('form').forEach(f => { f.noValidate = true; })")
    for label, value in (fill or {}).items():
        page.get_by_label(label, exact=True).fill(value)
    page.locator("main form[method=post] button[type=submit]").first.click()
    expect(page.locator(".invalid-feedback, .alert-danger").first).to_be_visible()


def test_form_errors_confirmations_and_empty_states_of_a_tenant_are_accessible(browser_page, tenant_a):  # noqa: F811
    from playwright.sync_api import expect

    page, seen = browser_page, {}
    tenant = tenant_a.tenant
    unheld = SecurityRole.objects.for_tenant(tenant).create(
        tenant=tenant, name="Night shift", user_type="internal", permissions=["copilot.summarize"])
    technician = SecurityRole.objects.for_tenant(tenant).get(name="Technician")
    webhook = object_pk("webhook", tenant_a)
    case = object_pk("abuse_case", tenant_a)
    log_in(page, "admin@alpha.test")

    # Forms with their errors.
    submit_with_errors(page, "/t/alpha/users/new/")
    check(page, "invite a user: errors", seen)
    submit_with_errors(page, "/t/alpha/roles/new/")
    check(page, "new role: errors", seen)
    submit_with_errors(page, "/t/alpha/companies/new/")
    check(page, "new company: errors", seen)
    submit_with_errors(page, "/t/alpha/usage/webhooks/new/", {"URL": "not a url"})
    check(page, "new webhook: errors", seen)
    page.goto("/t/alpha/compliance/access-review/?at=yesterday")
    expect(page.locator(".invalid-feedback").first).to_be_visible()
    check(page, "access review: a moment that is not one", seen)
    # The playground's field errors, swapped in by htmx, then the preview panel.
    page.goto("/t/alpha/copilot/")
    page.get_by_label("Ticket summary").fill("")
    page.get_by_test_id("preview-summarize").click()
    expect(page.locator("#id_summary_error")).to_be_visible()
    check(page, "playground: field errors (htmx)", seen)
    page.get_by_label("Ticket summary").fill("Printer offline")
    page.get_by_test_id("preview-summarize").click()
    expect(page.get_by_test_id("sent-preview")).to_be_visible()
    check(page, "playground: what is sent", seen)

    # Confirmation pages: what will follow, or why it cannot happen yet.
    for label, path in [
        ("deactivate a user", f"/t/alpha/users/{tenant_a.members['tech'].pk}/deactivate/"),
        ("deactivate a role members hold", f"/t/alpha/roles/{technician.pk}/deactivate/"),
        ("delete a role", f"/t/alpha/roles/{unheld.pk}/delete/"),
        ("delete a webhook", f"/t/alpha/usage/webhooks/{webhook}/delete/"),
        ("decide an abuse case", f"/t/alpha/usage/abuse-cases/{case}/decide/"),
    ]:
        assert page.goto(path).status == 200, path
        check(page, label, seen)

    # Empty states.
    for label, path in [
        ("usage without calls", "/t/alpha/usage/"),
        ("notifications: none", "/t/alpha/usage/notifications/"),
        ("users: no match", "/t/alpha/users/?q=nobody-matches-this"),
        ("audit log: no match", "/t/alpha/audit/?q=nobody-matches-this"),
        ("review campaigns: none", "/t/alpha/compliance/access-reviews/"),
        ("integration keys: none", "/t/alpha/integration-keys/"),
    ]:
        assert page.goto(path).status == 200, path
        check(page, label, seen)

    assert report(seen) == "", f"serious or critical violations in {len(seen)} states:\n{report(seen)}"


def test_a_plan_without_the_copilot_is_accessible(browser_page, tenant_a):  # noqa: F811
    page, seen = browser_page, {}
    tenant = tenant_a.tenant
    tenant.plan, tenant.copilot_enabled = "itsm", False
    tenant.save()
    log_in(page, "admin@alpha.test")
    for path in ("/t/alpha/", "/t/alpha/settings/", "/t/alpha/copilot/", "/t/alpha/usage/", "/t/alpha/usage/limits/"):
        assert page.goto(path).status == 200, path
        if path != "/t/alpha/":
            assert page.get_by_test_id("not-in-plan").is_visible(), path
        check(page, path, seen)
    assert report(seen) == "", report(seen)


def test_the_navbar_opened_at_phone_width_is_accessible(browser_page, tenant_a, operator):  # noqa: F811
    from playwright.sync_api import expect

    page, seen = browser_page, {}
    page.set_viewport_size({"width": 375, "height": 740})
    log_in(page, "admin@alpha.test")
    for path in ("/t/alpha/", "/t/alpha/users/", "/t/alpha/copilot/"):
        page.goto(path)
        check(page, f"{path} menu closed", seen)
        menu = page.get_by_role("button", name="Menu")
        if menu.is_visible():
            menu.click()
            expect(menu).to_have_attribute("aria-expanded", "true")
        check(page, f"{path} menu open", seen)
    page.get_by_role("button", name="Log out").first.click()
    page.wait_for_url(re.compile(r"/login/"))
    log_in_operator(page, operator)
    page.get_by_role("button", name="Menu").click()
    check(page, "operator console, menu open", seen)
    submit_with_errors(page, "/platform/deployments/new/")
    check(page, "new deployment at phone width: errors", seen)
    assert report(seen) == "", report(seen)
