"""The compliance auditor in chromium: starts an access review campaign and completes it once
the administrator has decided; reads the access review at a moment, the signed checkpoints (and
downloads them), and the data-exchange record with its inline SVG diagram, all under the strict
Content-Security-Policy (the `browser_page` fixture fails on any violation)."""

from django.conf import settings
from django.utils import timezone

from copilot_admin.audit.services import audit_seal
from copilot_admin.compliance.models import ReviewCampaign
from copilot_admin.compliance.review_selectors import campaign_items
from copilot_admin.compliance.review_services import campaign_item_decide
from copilot_admin.regions.models import AuthMode, AzureDeployment
from tests.browser.test_admin_flow import browser_page, log_in, nav_link, pytestmark  # noqa: F401


def test_auditor_review_checkpoints_and_data_exchange(browser_page, tenant_a):  # noqa: F811
    from playwright.sync_api import expect

    page = browser_page
    AzureDeployment.objects.create(
        zone=tenant_a.tenant.zone, name="alpha-eastus", endpoint="https://alpha.openai.azure.com",
        deployment="gpt-4o", auth_mode=AuthMode.ENTRA_ID,
    )
    log_in(page, "auditor@alpha.test")

    # A review campaign: start it, the administrator decides, the auditor completes it.
    nav_link(page, "Review campaigns").click()
    page.get_by_label("Name").fill("Q4 access review")
    page.get_by_test_id("review-start").click()
    expect(page.get_by_test_id("review-items")).to_contain_text("tech@alpha.test")
    expect(page.get_by_test_id("review-complete")).to_be_disabled()
    campaign = ReviewCampaign.objects.for_tenant(tenant_a.tenant).get()
    admin = tenant_a.members["admin"]
    for item in campaign_items(campaign=campaign).exclude(email="admin@alpha.test"):
        campaign_item_decide(actor=admin, item=item, decision="confirmed", note="still on the desk")
    # Nobody decides on their own access: a second administrator (not modelled here) did.
    campaign_items(campaign=campaign).filter(email="admin@alpha.test").update(
        decision="confirmed", decided_by_email="second-admin@alpha.test", decided_at=timezone.now())
    page.reload()
    expect(page.get_by_test_id("review-items")).to_contain_text("still on the desk")
    page.get_by_test_id("review-complete").click()
    expect(page.get_by_test_id("review-status")).to_contain_text("Completed")
    expect(page.get_by_test_id("review-export")).to_be_visible()

    # The access review at a moment.
    nav_link(page, "Access review").click()
    page.get_by_label("At (UTC)").fill(timezone.now().isoformat())
    page.get_by_role("button", name="Show").click()
    expect(page.get_by_test_id("review")).to_contain_text("Technician")
    expect(page.get_by_test_id("review-csv")).to_be_visible()

    # Signed checkpoints, and the file to keep elsewhere.
    audit_seal()
    nav_link(page, "Signed checkpoints").click()
    expect(page.get_by_test_id("checkpoints").locator("tbody tr").first).to_contain_text(settings.AUDIT_CHECKPOINT_KEY_ID)
    href = page.get_by_test_id("checkpoints-download").get_attribute("href")
    download = page.request.get(href)
    assert download.ok and download.json()["results"] and "attachment" in download.headers["content-disposition"]

    # The data-exchange record with its diagram.
    nav_link(page, "Data exchange").click()
    diagram = page.get_by_test_id("exchange-diagram").locator("svg")
    expect(diagram).to_be_visible()
    expect(diagram).to_contain_text("alpha-eastus")
    expect(page.get_by_test_id("fields-leaving")).to_contain_text("Initial description")
    expect(page.get_by_test_id("recipients")).to_contain_text("Entra ID")
