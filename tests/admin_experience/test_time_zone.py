"""Issue 14: a per-user time zone for display. Pages show a user times in its zone and say
which; stored times, the API, exports, e-mails and tasks stay UTC."""

import json
import re
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from zoneinfo import ZoneInfo

import pytest
from django.contrib.auth.models import AnonymousUser
from django.core.exceptions import ValidationError
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone
from rest_framework.test import APIClient

from copilot_admin import celery_app
from copilot_admin.audit.models import AuditEntry
from copilot_admin.audit.services import audit_event_record
from copilot_admin.core.errors import ApplicationError, PermissionRefused
from copilot_admin.core.middleware import UserTimeZoneMiddleware
from copilot_admin.core.timezones import time_zone_choices, validate_time_zone
from copilot_admin.directory import services
from copilot_admin.identity.forms import IntegrationKeyForm
from copilot_admin.usage import services as usage_services
from copilot_admin.usage.admission import RateLimitExceeded, _refusal_message
from copilot_admin.usage.models import AbuseCase, AccessStatus, CopilotAccess, LimitName, UsageRecord
from tests.conftest import api_client_for


def set_zone(user, name):
    user.time_zone = name
    user.save(update_fields=["time_zone"])
    return user


# -- choosing a zone -----------------------------------------------------------------------------


def test_the_zone_names_are_validated_against_the_zone_database():
    validate_time_zone("")
    validate_time_zone("Europe/Berlin")
    for bad in ("Mars/Olympus", "europe/berlin", "CET; DROP", "../etc/passwd"):
        with pytest.raises(ValidationError):
            validate_time_zone(bad)


def test_the_picker_offers_common_zones_first_then_every_region():
    groups = dict(time_zone_choices())
    assert next(iter(groups)) == "Common"
    common = [value for value, _ in groups["Common"]]
    assert common[0] == "UTC" and "Europe/Berlin" in common and "America/New_York" in common
    assert "Pacific/Chatham" in [value for value, _ in groups["Pacific"]]
    assert "Etc" not in groups


def test_the_owner_changes_its_zone_on_the_profile_page_and_the_change_is_audited(client, tenant_a):
    user = tenant_a.members["tech"].user
    client.force_login(user)
    page = client.get("/account/").content.decode()
    assert 'data-testid="time-zone-card"' in page and '<optgroup label="Common">' in page
    assert '<option value="UTC" selected>' in page
    response = client.post("/account/", {"action": "time_zone", "time_zone": "Europe/Berlin"})
    assert response.status_code == 302
    user.refresh_from_db()
    assert user.time_zone == "Europe/Berlin"
    entry = AuditEntry.objects.platform_chain().get(object_type__in=["user", "tenants.user", "tenants | user"],
                                                    changes__has_key="time_zone")
    assert entry.changes["time_zone"] == ["", "Europe/Berlin"] and entry.actor_id == user.pk
    assert '<option value="Europe/Berlin" selected>' in client.get("/account/").content.decode()
    # Back to UTC: stored blank, like a user who never chose.
    client.post("/account/", {"action": "time_zone", "time_zone": "UTC"})
    user.refresh_from_db()
    assert user.time_zone == ""


def test_an_unknown_zone_is_a_form_error_not_a_change(client, tenant_a):
    user = set_zone(tenant_a.members["tech"].user, "Asia/Tokyo")
    client.force_login(user)
    response = client.post("/account/", {"action": "time_zone", "time_zone": "Mars/Olympus"})
    assert response.status_code == 400
    assert "invalid-feedback" in response.content.decode() and "Mars/Olympus" in response.content.decode()
    user.refresh_from_db()
    assert user.time_zone == "Asia/Tokyo"


def test_the_service_refuses_unknown_zones_and_other_actors(tenant_a):
    tech, admin = tenant_a.members["tech"].user, tenant_a.members["admin"].user
    with pytest.raises(ApplicationError) as refused:
        services.account_time_zone_update(actor=tech, user=tech, time_zone="Nowhere/Town")
    assert refused.value.code == "invalid_time_zone" and "time_zone" in refused.value.fields
    with pytest.raises(PermissionRefused):
        services.account_time_zone_update(actor=admin, user=tech, time_zone="Europe/Paris")
    tech.refresh_from_db()
    assert tech.time_zone == ""


# -- where the zone applies ----------------------------------------------------------------------

BERLIN = ZoneInfo("Europe/Berlin")


def test_the_middleware_activates_the_zone_for_pages_and_never_under_api(rf, tenant_a):
    user = set_zone(tenant_a.members["tech"].user, "Asia/Tokyo")
    seen = []
    middleware = UserTimeZoneMiddleware(lambda request: seen.append(timezone.get_current_timezone_name()) or "ok")
    for path in ("/t/alpha/", "/account/", "/api/v1/tenants/alpha/users/", "/api/schema/"):
        request = rf.get(path)
        request.user = user
        middleware(request)
    request = rf.get("/login/")
    request.user = AnonymousUser()
    middleware(request)
    assert seen == ["Asia/Tokyo", "Asia/Tokyo", "UTC", "UTC", "UTC"]
    assert timezone.get_current_timezone_name() == "UTC"  # nothing carries over to the next request


def test_pages_show_times_in_the_users_zone_and_name_it(client, tenant_a):
    admin = set_zone(tenant_a.members["admin"].user, "Europe/Berlin")
    tech = tenant_a.members["tech"]
    opened = datetime(2026, 11, 20, 21, 30, tzinfo=UTC)
    case = AbuseCase.objects.for_tenant(tenant_a.tenant).create(
        tenant=tenant_a.tenant, membership=tech, kind="review", summary="Near the limit", opened_at=opened,
    )
    client.force_login(admin)
    page = client.get(reverse("usage:abuse_case", kwargs={"tenant_slug": "alpha", "pk": case.pk})).content.decode()
    assert "2026-11-20 22:30 CET" in page and "21:30" not in page
    assert 'data-testid="display-zone"' in page and "Times in Europe/Berlin" in page
    # A user who never chose sees UTC, named.
    client.force_login(tenant_a.members["auditor"].user)
    set_zone(tenant_a.members["auditor"].user, "")
    auditor_page = client.get(reverse("audit:list", kwargs={"tenant_slug": "alpha"})).content.decode()
    assert "Times in UTC" in auditor_page and "When (UTC)" in auditor_page
    client.force_login(admin)
    admin_page = client.get(reverse("audit:list", kwargs={"tenant_slug": "alpha"})).content.decode()
    assert "When (Europe/Berlin)" in admin_page and "exports are in UTC" in admin_page


def test_the_api_answers_in_utc_for_a_session_with_a_zone(tenant_a):
    admin = set_zone(tenant_a.members["admin"].user, "Europe/Berlin")
    opened = datetime(2026, 11, 20, 21, 30, tzinfo=UTC)
    AbuseCase.objects.for_tenant(tenant_a.tenant).create(
        tenant=tenant_a.tenant, membership=tenant_a.members["tech"], kind="review", summary="x", opened_at=opened,
    )
    for api in (api_client_for(admin), _session_api(admin)):
        response = api.get(reverse("api:abuse-cases-list", kwargs={"tenant_slug": "alpha"}))
        assert response.status_code == 200, response.content
        body = response.content.decode()
        assert "2026-11-20T21:30:00Z" in body and "+01:00" not in body and "22:30" not in body


def _session_api(user) -> APIClient:
    api = APIClient()
    api.force_login(user)
    return api


def test_exports_stay_in_utc_for_a_user_with_a_zone(client, tenant_a, operator):
    set_zone(operator, "Pacific/Auckland")
    admin = set_zone(tenant_a.members["admin"].user, "Pacific/Auckland")
    UsageRecord.objects.for_tenant(tenant_a.tenant).create(
        tenant=tenant_a.tenant, user_id=admin.pk, membership=tenant_a.members["admin"], company=tenant_a.companies[0],
        feature="summarize", zone="us", outcome="ok", request_id="req-tz", prompt_tokens=10, completion_tokens=2,
        # 20 November in UTC, already the 21st in Auckland.
        created_at=datetime(2026, 11, 20, 20, 0, tzinfo=UTC),
    )
    export = _session_api(admin).get(reverse("api:usage-export", kwargs={"tenant_slug": "alpha"}),
                                     {"since": "2026-11-20", "until": "2026-11-21", "group_by": "day",
                                      "format": "jsonl"})
    body = b"".join(export.streaming_content).decode() if export.streaming else export.content.decode()
    assert export.status_code == 200, body
    assert [(row["day"], row["requests"]) for row in map(json.loads, body.splitlines())] == [("2026-11-20", 1)]
    # The audit export across tenants is a page route: its times are UTC too.
    audit_event_record(tenant=tenant_a.tenant, actor=admin, action="test.tz", object_type="user",
                       object_id=admin.pk, object_repr=admin.email)
    client.force_login(operator)
    response = client.get(reverse("platform_audit:export"), {"format": "csv"})
    text = b"".join(response.streaming_content).decode() if response.streaming else response.content.decode()
    assert response.status_code == 200, text
    row = next(line for line in text.splitlines() if "test.tz" in line)
    assert re.search(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+Z", row) and "+13:00" not in row


# -- tasks, e-mails, limit messages --------------------------------------------------------------


@celery_app.task
def _zone_seen_by_a_task():
    return timezone.get_current_timezone_name()


def test_tasks_run_in_utc_even_when_enqueued_from_a_page_with_a_zone():
    with timezone.override(BERLIN):
        # disable_sync_subtasks: a real worker started in-process earlier in the session leaves
        # Celery's "inside a task" flag set; waiting on an eager result is not a sub-task here.
        assert _zone_seen_by_a_task.delay().get(disable_sync_subtasks=False) == "UTC"
        assert _zone_seen_by_a_task.apply().get(disable_sync_subtasks=False) == "UTC"
        assert timezone.get_current_timezone_name() == "Europe/Berlin"  # the page's zone is back


def test_e_mails_state_utc_whatever_zone_is_active():
    case = SimpleNamespace(suspended_until=datetime(2026, 11, 20, 23, 30, tzinfo=UTC))
    context = {"tenant": SimpleNamespace(name="Alpha MSP"), "case": case, "notification": SimpleNamespace(reason="r")}
    with timezone.override(BERLIN):
        for name in ("usage_access_suspended", "usage_case_opened"):
            for ext in ("txt", "html"):
                text = render_to_string(f"emails/{name}.{ext}", context)
                assert "2026-11-20 23:30 UTC" in text and "00:30" not in text, (name, ext)


def test_a_limit_refusal_tells_the_reset_in_the_active_zone():
    now = datetime(2026, 11, 20, 21, 59, tzinfo=UTC)
    with timezone.override(BERLIN):
        message = _refusal_message(LimitName.USER_REQUESTS_PER_DAY, 6, 7260, now=now)
    assert message == "You have reached today's limit of 6 requests. It resets at 01:00 CET (in 2 h 01 min)."
    assert "00:00 UTC" in _refusal_message(LimitName.USER_REQUESTS_PER_DAY, 6, 7260, now=now)


def _refuse_at_midnight(**kwargs):
    now = datetime(2026, 11, 20, 21, 59, tzinfo=UTC)
    raise RateLimitExceeded(_refusal_message(LimitName.USER_REQUESTS_PER_DAY, 6, 7260, now=now), retry_after=7260,
                            limit=LimitName.USER_REQUESTS_PER_DAY)


def test_the_playground_says_the_reset_in_the_users_zone_and_the_api_in_utc(client, tenant_a, monkeypatch):
    tenant = tenant_a.tenant
    tenant.copilot_enabled, tenant.feature_switches = True, {"summarize": True}
    tenant.save()
    monkeypatch.setattr(usage_services, "limits_reserve", _refuse_at_midnight)
    tech = set_zone(tenant_a.members["tech"].user, "Europe/Berlin")
    client.force_login(tech)
    form = {"company": tenant_a.companies[2].pk, "summary": "Disk full", "feature": "summarize"}
    page = client.post(reverse("copilot:playground", kwargs={"tenant_slug": "alpha"}), form).content.decode()
    assert "It resets at 01:00 CET (in 2 h 01 min)." in page
    ticket = {"company": str(tenant_a.companies[2].pk), "contact": {"first_name": "A", "last_name": "B"},
              "issue": {"summary": "Disk full"}}
    for api in (api_client_for(tech), _session_api(tech)):
        response = api.post(reverse("api:copilot-summarize", kwargs={"tenant_slug": "alpha"}), ticket, format="json")
        assert response.status_code == 429, response.content
        assert "It resets at 00:00 UTC (in 2 h 01 min)." in response.json()["error"]["message"]


def test_a_suspension_on_a_page_is_told_in_the_users_zone(client, tenant_a):
    tenant = tenant_a.tenant
    tenant.copilot_enabled, tenant.feature_switches = True, {"summarize": True}
    tenant.save()
    tech = tenant_a.members["tech"]
    until = timezone.now() + timedelta(hours=3)
    CopilotAccess.objects.for_tenant(tenant).create(tenant=tenant, membership=tech, status=AccessStatus.SUSPENDED,
                                                    suspended_until=until)
    client.force_login(set_zone(tech.user, "America/New_York"))
    page = client.get(reverse("copilot:playground", kwargs={"tenant_slug": "alpha"})).content.decode()
    local = until.astimezone(ZoneInfo("America/New_York"))
    assert f"suspended until {local:%Y-%m-%d %H:%M} {local.tzname()}" in page


def test_the_integration_key_expiry_is_read_in_the_zone_its_label_names():
    with timezone.override(BERLIN):
        form = IntegrationKeyForm(data={"name": "PSA", "scopes": ["copilot"], "expires_at": "2027-01-10T12:00"})
        assert form.fields["expires_at"].label == "Expires (Europe/Berlin)"
        assert form.is_valid(), form.errors
    assert form.cleaned_data["expires_at"] == datetime(2027, 1, 10, 11, 0, tzinfo=UTC)
    assert IntegrationKeyForm().fields["expires_at"].label == "Expires (UTC)"


def test_a_stored_zone_the_database_no_longer_knows_shows_utc(client, tenant_a):
    user = set_zone(tenant_a.members["tech"].user, "Gone/Zone")  # e.g. removed from a later tzdata
    client.force_login(user)
    page = client.get("/account/")
    assert page.status_code == 200 and "Times in UTC" in page.content.decode()
