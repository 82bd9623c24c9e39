"""Issue 14: invited users show "invited" with the date, with re-send and revoke; deactivating
a user asks on a page of its own what follows; a suspended user's copilot access shows in the
list and on its page with until when and a link to the case; the users list sorts by column."""

from datetime import timedelta

from django.urls import reverse
from django.utils import timezone

from copilot_admin.usage.models import AbuseCase, AccessStatus, CaseKind, CopilotAccess
from tenants.models import Membership
from tests.audit.conftest import entries
from tests.factories import add_member


def url(name, **kwargs):
    return reverse(name, kwargs={"tenant_slug": "alpha", **kwargs})


def test_invited_user_shows_the_date_and_can_be_revoked_after_confirmation(client, tenant_a):
    pending = add_member(tenant_a.tenant, "Technician", email="new@alpha.test", accepted=False)
    client.force_login(tenant_a.members["admin"].user)
    listing = client.get(url("directory:users")).content.decode()
    assert f"invited</span> <span class=\"small text-body-secondary\">{pending.created_at:%Y-%m-%d}" in listing
    page = client.get(url("directory:user_edit", pk=pending.pk)).content.decode()
    assert "Invited on" in page and "Resend invitation" in page and "Revoke invitation" in page
    confirm = client.get(url("directory:user_revoke", pk=pending.pk)).content.decode()
    assert "Revoke the invitation of new@alpha.test?" in confirm and "stop working" in confirm
    assert Membership.objects.for_tenant(tenant_a.tenant).filter(pk=pending.pk).exists()  # GET changes nothing
    response = client.post(url("directory:user_revoke", pk=pending.pk))
    assert response.status_code == 302
    assert not Membership.objects.for_tenant(tenant_a.tenant).filter(pk=pending.pk).exists()
    assert entries(tenant_a, action="membership.delete").count() == 1
    # An accepted member has no revoke page (deactivate instead).
    assert client.get(url("directory:user_revoke", pk=tenant_a.members["tech"].pk)).status_code == 404


def test_deactivation_waits_for_its_confirmation_page(client, tenant_a):
    tech = tenant_a.members["tech"]
    client.force_login(tenant_a.members["admin"].user)
    # Unticking "Active" in the edit form saves the rest and asks for the confirmation.
    response = client.post(url("directory:user_edit", pk=tech.pk), {"role": tech.role.pk})
    assert response.status_code == 302 and response["Location"] == url("directory:user_deactivate", pk=tech.pk)
    tech.refresh_from_db()
    assert tech.is_active
    confirm = client.get(response["Location"]).content.decode()
    assert f"Deactivate {tech.user.email}?" in confirm and "loses access to Alpha MSP at once" in confirm
    assert client.post(response["Location"]).status_code == 302
    tech.refresh_from_db()
    assert not tech.is_active
    # Nothing more to confirm for an inactive user.
    assert client.get(url("directory:user_deactivate", pk=tech.pk)).status_code == 404


def test_own_deactivation_is_refused_with_a_sentence(client, tenant_a):
    admin = tenant_a.members["admin"]
    client.force_login(admin.user)
    response = client.post(url("directory:user_deactivate", pk=admin.pk), follow=True)
    assert "You cannot change your own role or deactivate yourself." in response.content.decode()
    admin.refresh_from_db()
    assert admin.is_active


def test_suspended_copilot_access_shows_until_when_and_the_case(client, tenant_a):
    tech = tenant_a.members["tech"]
    until = timezone.now() + timedelta(hours=2, minutes=1, seconds=30)
    CopilotAccess.objects.for_tenant(tenant_a.tenant).create(
        tenant=tenant_a.tenant, membership=tech, status=AccessStatus.SUSPENDED, suspended_until=until)
    case = AbuseCase.objects.for_tenant(tenant_a.tenant).create(
        tenant=tenant_a.tenant, membership=tech, kind=CaseKind.SUSPENSION, summary="3 strikes", suspended_until=until)
    client.force_login(tenant_a.members["admin"].user)
    listing = client.get(url("directory:users")).content.decode()
    assert "copilot suspended" in listing
    page = client.get(url("directory:user_edit", pk=tech.pk)).content.decode()
    assert f"Copilot access suspended until {until:%Y-%m-%d %H:%M} UTC (in 2 h 01 min)." in page
    assert url("usage:abuse_case", pk=case.pk) in page
    # A lapsed suspension is no longer shown.
    CopilotAccess.objects.for_tenant(tenant_a.tenant).filter(membership=tech).update(
        suspended_until=timezone.now() - timedelta(minutes=1))
    assert "copilot suspended" not in client.get(url("directory:users")).content.decode()


def test_users_list_sorts_by_column_and_keeps_filters(client, tenant_a):
    client.force_login(tenant_a.members["admin"].user)
    ascending = client.get(url("directory:users"), {"sort": "role"})
    roles = [m.role.name for m in ascending.context["object_list"]]
    assert roles == sorted(roles)
    descending = client.get(url("directory:users"), {"sort": "-email", "user_type": "internal"})
    emails = [m.user.email for m in descending.context["object_list"]]
    assert emails == sorted(emails, reverse=True) and "comanaged@alpha.test" not in emails
    body = descending.content.decode()
    assert 'aria-sort="descending"' in body and "user_type=internal&amp;sort=email" in body
    # An unknown key falls back to the e-mail order, never an error.
    assert client.get(url("directory:users"), {"sort": "user__password"}).status_code == 200
