"""Issue 14: a per-user time zone for display. Pages show a user times in its zone and say
which; stored times, the API, exports, e-mails and tasks stay UTC."""

import pytest
from django.core.exceptions import ValidationError

from copilot_admin.audit.models import AuditEntry
from copilot_admin.core.errors import ApplicationError, PermissionRefused
from copilot_admin.core.timezones import time_zone_choices, validate_time_zone
from copilot_admin.directory import services


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
    assert list(groups)[0] == "Common"
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
