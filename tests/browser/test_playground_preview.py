"""Issue 14 in chromium: the playground's sample ticket, "preview what is sent" (htmx, under the
strict CSP) and an answer built from the ticket; screenshots go to test-artifacts/."""

import pytest

from tests.browser.test_admin_flow import ARTIFACTS, browser_page, log_in, nav_link  # noqa: F401
from tests.copilot.conftest import sim, simulator_url  # noqa: F401
from tests.regions.fixtures import deployment_factory  # noqa: F401

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]


@pytest.fixture
def us_simulated_deployment(deployment_factory, simulator_url, sim):  # noqa: F811
    return deployment_factory(zone="us", name="us-primary", endpoint=simulator_url, deployment="dep-us", priority=1)


def test_sample_ticket_preview_then_answer(browser_page, tenant_a, us_simulated_deployment, sim):  # noqa: F811
    from playwright.sync_api import expect

    page = browser_page
    log_in(page, "admin@alpha.test")
    nav_link(page, "Copilot playground").click()
    page.get_by_test_id("sample-ticket").click()
    expect(page.get_by_label("Ticket summary")).to_have_value("Outlook keeps asking for the password after the Windows update")
    page.get_by_test_id("preview-summarize").click()
    expect(page.get_by_test_id("sent-preview")).to_be_visible()
    expect(page.get_by_test_id("dropped-fields")).to_contain_text("internal note: never sent")
    expect(page.get_by_test_id("sent-payload")).not_to_contain_text("448-213")
    assert sim.requests() == []
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "playground-preview.png"), full_page=True)

    page.locator('button[name="feature"][value="summarize"]').click()
    expect(page.get_by_test_id("copilot-answer")).to_contain_text("reports: Outlook keeps asking for the password")
    page.screenshot(path=str(ARTIFACTS / "playground-answer.png"), full_page=True)


def test_field_errors_appear_next_to_their_field_through_htmx(browser_page, tenant_a, us_simulated_deployment, sim):  # noqa: F811
    from playwright.sync_api import expect

    page = browser_page
    log_in(page, "tech@alpha.test")
    nav_link(page, "Copilot playground").click()
    url = page.url
    summary = page.get_by_label("Ticket summary")
    summary.fill("")
    page.get_by_test_id("preview-summarize").click()
    # The page did not reload (htmx), and the error sits under the summary field.
    expect(page.locator("#id_summary_error")).to_have_text("This field is required.")
    expect(summary).to_have_attribute("aria-invalid", "true")
    assert page.url == url
    expect(page.get_by_test_id("copilot-refusal")).to_contain_text("Check the ticket fields.")
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "playground-field-errors.png"), full_page=True)
    # Corrected, the error goes and the preview shows the request settings sent.
    summary.fill("Printer offline")
    page.get_by_test_id("preview-summarize").click()
    expect(page.get_by_test_id("sent-settings")).to_contain_text("dep-us")
    expect(page.locator("#id_summary_error")).to_have_count(0)
    page.get_by_test_id("sent-settings").screenshot(path=str(ARTIFACTS / "playground-request-settings.png"))
    assert sim.requests() == []
