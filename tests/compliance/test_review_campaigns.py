"""Access review campaigns: the auditor starts one (each member's access captured), the
administrator confirms or flags with the change (made and audited), nobody decides on their
own access, the auditor completes it once all are decided, and the export (recorded) lists
who decided what, when."""

import csv
import io

import pytest

from copilot_admin.access.models import SecurityRole
from copilot_admin.audit.models import AuditEntry
from copilot_admin.audit.services import audit_seal
from copilot_admin.compliance.models import CampaignStatus, ReviewItem
from copilot_admin.compliance.review_selectors import campaign_items
from copilot_admin.compliance.review_services import campaign_item_decide, campaign_start
from copilot_admin.core.errors import ApplicationError, Conflict, PermissionRefused
from tenants.models import Membership
from tests.conftest import api_client_for

API = "/api/v1/tenants/alpha/access-reviews/"


def actions(world):
    audit_seal(tenant_id=world.tenant.pk)
    return list(AuditEntry.objects.for_tenant(world.tenant).filter(action__startswith="access_review.")
                .order_by("id").values_list("action", flat=True))


@pytest.fixture
def campaign(tenant_a):
    return campaign_start(actor=tenant_a.members["auditor"], name="Q4 review")


def item_of(campaign, email) -> ReviewItem:
    return campaign_items(campaign=campaign).get(email=email)


def test_start_captures_every_members_access(tenant_a, campaign):
    items = {item.email: item for item in campaign_items(campaign=campaign)}
    assert set(items) == {f"{key}@alpha.test" for key in ("admin", "tech", "comanaged", "auditor")}
    assert items["tech@alpha.test"].role == "Technician" and items["comanaged@alpha.test"].companies == [
        "Alpha MSP Client One"]
    assert all(item.decision == "pending" for item in items.values())
    assert actions(tenant_a) == ["access_review.start"]


def test_the_full_review_through_the_api(tenant_a):
    auditor = api_client_for(tenant_a.members["auditor"].user)
    admin = api_client_for(tenant_a.members["admin"].user)
    created = auditor.post(API, {"name": "Q4"}, format="json")
    assert created.status_code == 201
    campaign = created.json()
    items = {item["email"]: item["id"] for item in campaign["items"]}
    url = f"{API}{campaign['id']}/"
    auditor_role = SecurityRole.objects.for_tenant(tenant_a.tenant).get(name="Compliance Auditor")
    # The auditor cannot decide; the administrator can, but not on their own access.
    assert auditor.post(url + "decide/", {"item": items["tech@alpha.test"], "decision": "confirmed"},
                        format="json").status_code == 403
    own = admin.post(url + "decide/", {"item": items["admin@alpha.test"], "decision": "confirmed"}, format="json")
    assert own.status_code == 409 and own.json()["error"]["code"] == "own_access"
    # A flag needs its change, and makes it.
    bare = admin.post(url + "decide/", {"item": items["tech@alpha.test"], "decision": "flagged"}, format="json")
    assert bare.status_code == 400
    flagged = admin.post(url + "decide/", {"item": items["tech@alpha.test"], "decision": "flagged",
                                           "role": auditor_role.pk, "note": "left the desk"}, format="json")
    assert flagged.status_code == 200
    assert Membership.objects.for_tenant(tenant_a.tenant).get(user__email="tech@alpha.test").role == auditor_role
    for email in ("comanaged@alpha.test", "auditor@alpha.test"):
        assert admin.post(url + "decide/", {"item": items[email], "decision": "confirmed"},
                          format="json").status_code == 200
    again = admin.post(url + "decide/", {"item": items["auditor@alpha.test"], "decision": "flagged",
                                         "deactivate": True}, format="json")
    assert again.status_code == 409 and again.json()["error"]["code"] == "already_decided"
    # The administrator's own item needs another decider: a second administrator.
    pending = auditor.post(url + "complete/")
    assert pending.status_code == 409 and pending.json()["error"]["code"] == "items_pending"
    ReviewItem.objects.for_tenant(tenant_a.tenant).filter(email="admin@alpha.test").update(decision="confirmed")
    completed = auditor.post(url + "complete/")
    assert completed.status_code == 200 and completed.json()["status"] == CampaignStatus.COMPLETED
    export = auditor.get(url + "export/")
    assert export.status_code == 200
    rows = list(csv.DictReader(io.StringIO(b"".join(export.streaming_content).decode())))
    tech = next(row for row in rows if row["email"] == "tech@alpha.test")
    assert tech["decision"] == "flagged" and tech["change"] == "role Technician -> Compliance Auditor"
    assert tech["decided_by"] == "admin@alpha.test" and tech["decided_at"] and tech["note"] == "left the desk"
    recorded = actions(tenant_a)
    assert recorded[0] == "access_review.start" and recorded.count("access_review.confirmed") == 2
    assert "access_review.flagged" in recorded and recorded[-2:] == ["access_review.complete", "access_review.export"]
    # The flag's change is in the log as the directory records it.
    audit_seal(tenant_id=tenant_a.tenant.pk)
    assert AuditEntry.objects.for_tenant(tenant_a.tenant).filter(action="membership.update",
                                                                 object_repr="tech@alpha.test").exists()


def test_decisions_after_completion_are_refused(tenant_a, campaign):
    ReviewItem.objects.for_tenant(tenant_a.tenant).update(decision="confirmed")
    api_client_for(tenant_a.members["auditor"].user).post(f"{API}{campaign.pk}/complete/")
    ReviewItem.objects.for_tenant(tenant_a.tenant).filter(email="tech@alpha.test").update(decision="pending")
    with pytest.raises(Conflict, match="completed"):
        campaign_item_decide(actor=tenant_a.members["admin"], item=item_of(campaign, "tech@alpha.test"),
                             decision="confirmed")


def test_services_check_their_own_permissions(tenant_a, campaign):
    with pytest.raises(PermissionRefused):
        campaign_start(actor=tenant_a.members["tech"], name="x")
    with pytest.raises(PermissionRefused):
        campaign_item_decide(actor=tenant_a.members["auditor"], item=item_of(campaign, "tech@alpha.test"),
                             decision="confirmed")
    with pytest.raises(ApplicationError):
        campaign_item_decide(actor=tenant_a.members["admin"], item=item_of(campaign, "tech@alpha.test"),
                             decision="maybe")


def test_deactivating_flag(tenant_a, campaign):
    campaign_item_decide(actor=tenant_a.members["admin"], item=item_of(campaign, "comanaged@alpha.test"),
                         decision="flagged", deactivate=True)
    assert not Membership.objects.for_tenant(tenant_a.tenant).get(user__email="comanaged@alpha.test").is_active
    assert item_of(campaign, "comanaged@alpha.test").change == "deactivated"


def test_foreign_role_and_item_are_400(tenant_a, tenant_b, campaign):
    admin = api_client_for(tenant_a.members["admin"].user)
    foreign_role = SecurityRole.objects.for_tenant(tenant_b.tenant).first()
    item = item_of(campaign, "tech@alpha.test").pk
    url = f"{API}{campaign.pk}/decide/"
    assert admin.post(url, {"item": item, "decision": "flagged", "role": foreign_role.pk},
                      format="json").status_code == 400
    assert admin.post(url, {"item": 999999, "decision": "confirmed"}, format="json").status_code == 400


def test_pages_start_decide_and_complete(client, tenant_a):
    client.force_login(tenant_a.members["auditor"].user)
    response = client.post("/t/alpha/compliance/access-reviews/", {"name": "Page review"})
    assert response.status_code == 302
    page = client.get(response["Location"]).content.decode()
    assert "Page review" in page and "tech@alpha.test" in page and "Flag and change" not in page
    client.force_login(tenant_a.members["admin"].user)
    item = ReviewItem.objects.for_tenant(tenant_a.tenant).get(email="tech@alpha.test")
    assert "Flag and change" in client.get(response["Location"]).content.decode()
    client.post(response["Location"], {"item": item.pk, "decision": "confirmed", "note": "ok"})
    item.refresh_from_db()
    assert item.decision == "confirmed" and item.note == "ok"
    listing = client.get("/t/alpha/compliance/access-reviews/").content.decode()
    assert "Page review" in listing
