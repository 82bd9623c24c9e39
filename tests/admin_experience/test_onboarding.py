"""Issue 14, onboarding: creating a tenant invites its first administrator (re-sent from the
tenant's console page); `/t/<slug>/` sends the operator to that page instead of a 404; the
tenant's overview (and the console page) show the setup checklist."""

import re

from django.core import mail
from django.test import Client
from django.urls import reverse

from copilot_admin.platform import services as platform_services
from copilot_admin.regions.models import DataZone
from tenants.models import Membership, Tenant
from tests.audit.conftest import entries
from tests.conftest import api_client_for


def create_acme(client, capture, email="first.admin@acme.test"):
    with capture(execute=True):
        return client.post(reverse("platform:tenant_create"), {
            "name": "Acme IT", "slug": "acme", "plan": "ultimate", "zone": DataZone.objects.get(code="us").pk,
            "admin_email": email,
        })


def test_creating_a_tenant_invites_its_first_administrator(client, operator, django_capture_on_commit_callbacks):
    client.force_login(operator)
    response = create_acme(client, django_capture_on_commit_callbacks)
    tenant = Tenant.objects.get(slug="acme")
    assert response.status_code == 302
    assert response["Location"] == reverse("platform:tenant_overview", kwargs={"pk": tenant.pk})
    membership = Membership.objects.for_tenant(tenant).select_related("role", "user").get()
    assert (membership.user.email, membership.role.name, membership.is_accepted) == (
        "first.admin@acme.test", "Tenant Administrator", False)
    assert [m.to for m in mail.outbox] == [["first.admin@acme.test"]]
    assert "Acme IT" in mail.outbox[0].subject
    # The link sets the first password, which accepts the invitation: the administrator is in.
    path = re.search(r"https?://[^/\s]+(/password/set/\S+/)", mail.outbox[0].body).group(1)
    newcomer = Client()
    form_page = newcomer.get(path, follow=True)
    assert form_page.status_code == 200
    set_response = newcomer.post(form_page.redirect_chain[-1][0] if form_page.redirect_chain else path,
                                 {"new_password1": "a-Long-new-passw0rd", "new_password2": "a-Long-new-passw0rd"})
    assert set_response.status_code == 302
    membership.refresh_from_db()
    assert membership.is_accepted
    invite_entry = entries(tenant, action="membership.create").get()
    assert invite_entry.actor_email == operator.email


def test_the_form_requires_the_administrators_email(client, operator):
    client.force_login(operator)
    response = client.post(reverse("platform:tenant_create"), {
        "name": "Acme IT", "slug": "acme", "plan": "ultimate", "zone": DataZone.objects.get(code="us").pk,
    })
    assert response.status_code == 200 and not Tenant.objects.filter(slug="acme").exists()
    assert "First administrator" in response.content.decode()


def test_the_api_invites_with_admin_email_and_works_without(operator, django_capture_on_commit_callbacks):
    api = api_client_for(operator)
    url = reverse("api:platform-tenants-list")
    with django_capture_on_commit_callbacks(execute=True):
        body = api.post(url, {"name": "Delta", "slug": "delta", "plan": "ops", "zone": "eu",
                              "admin_email": "boss@delta.test"}, format="json").json()
    assert "admin_email" not in body
    assert [m.to for m in mail.outbox] == [["boss@delta.test"]]
    without = api.post(url, {"name": "Echo", "slug": "echo", "plan": "ops", "zone": "eu"}, format="json")
    assert without.status_code == 201


def test_operator_resends_and_invites_from_the_tenant_page(client, operator, django_capture_on_commit_callbacks):
    client.force_login(operator)
    create_acme(client, django_capture_on_commit_callbacks)
    tenant = Tenant.objects.get(slug="acme")
    pending = Membership.objects.for_tenant(tenant).get()
    page = client.get(reverse("platform:tenant_overview", kwargs={"pk": tenant.pk})).content.decode()
    assert "first.admin@acme.test" in page and "invited" in page and "Re-send invitation" in page
    mail.outbox.clear()
    with django_capture_on_commit_callbacks(execute=True):
        resent = client.post(reverse("platform:tenant_invitation_resend", kwargs={"pk": tenant.pk,
                                                                                  "membership_pk": pending.pk}))
    assert resent.status_code == 302 and [m.to for m in mail.outbox] == [["first.admin@acme.test"]]
    assert entries(tenant, action="membership.invitation_resend").count() == 1
    with django_capture_on_commit_callbacks(execute=True):
        invited = client.post(reverse("platform:tenant_admin_invite", kwargs={"pk": tenant.pk}),
                              {"email": "second@acme.test"})
    assert invited.status_code == 302 and Membership.objects.for_tenant(tenant).count() == 2
    duplicate = client.post(reverse("platform:tenant_admin_invite", kwargs={"pk": tenant.pk}),
                            {"email": "second@acme.test"})
    assert duplicate.status_code == 400 and "already a user" in duplicate.content.decode()


def test_resend_refuses_another_tenants_or_an_accepted_membership(client, operator, tenant_a, tenant_b):
    client.force_login(operator)
    url = reverse("platform:tenant_invitation_resend",
                  kwargs={"pk": tenant_a.tenant.pk, "membership_pk": tenant_b.members["admin"].pk})
    assert client.post(url).status_code == 404
    accepted = reverse("platform:tenant_invitation_resend",
                       kwargs={"pk": tenant_a.tenant.pk, "membership_pk": tenant_a.members["admin"].pk})
    assert client.post(accepted).status_code == 404


def test_tenant_root_sends_the_operator_to_the_console_page(client, operator, tenant_a):
    client.force_login(operator)
    response = client.get(reverse("directory:overview", kwargs={"tenant_slug": "alpha"}))
    assert response.status_code == 302
    assert response["Location"] == reverse("platform:tenant_overview", kwargs={"pk": tenant_a.tenant.pk})
    # The console page is read-only and recorded in the tenant's log.
    page = client.get(response["Location"])
    assert page.status_code == 200 and "Setup checklist" in page.content.decode()
    assert entries(tenant_a, action="operator.tenant_access").exists()
    # A missing tenant is still a 404, and other tenant pages stay closed to the operator.
    assert client.get(reverse("directory:overview", kwargs={"tenant_slug": "nowhere"})).status_code == 404
    assert client.get(reverse("directory:users", kwargs={"tenant_slug": "alpha"})).status_code == 404


def test_overview_shows_the_setup_checklist_to_administrators_only(client, tenant_a):
    tenant = tenant_a.tenant
    client.force_login(tenant_a.members["admin"].user)
    page = client.get(reverse("directory:overview", kwargs={"tenant_slug": "alpha"})).content.decode()
    for label in ("First administrator", "Single sign-on", "MFA", "Security roles", "Client companies",
                  "Usage limits", "Copilot switches"):
        assert label in page, label
    assert 'data-check="companies" data-done="yes"' in page
    assert 'data-check="roles" data-done="no"' in page
    assert 'data-check="limits" data-done="no"' in page
    tech = Client()
    tech.force_login(tenant_a.members["tech"].user)
    overview = tech.get(reverse("directory:overview", kwargs={"tenant_slug": tenant.slug}))
    assert "Setup checklist" not in overview.content.decode()


def test_checklist_follows_what_exists(tenant_a, operator):
    from copilot_admin.access.setup_checks import setup_checklist

    tenant = tenant_a.tenant
    items = {item.key: item for item in setup_checklist(tenant=tenant)}
    assert list(items) == ["administrator", "sso", "mfa", "roles", "companies", "limits", "copilot"]
    assert items["administrator"].done and not items["sso"].done
    tenant.plan = "itsm"
    tenant.save()
    copilot = {item.key: item for item in setup_checklist(tenant=tenant)}["copilot"]
    assert not copilot.done and "not included in the ITSM plan" in copilot.detail
    fresh = platform_services.tenant_create(actor=operator, name="Zed", slug="zed", plan="ops",
                                            zone=DataZone.objects.get(code="us"))
    fresh_items = {item.key: item for item in setup_checklist(tenant=fresh)}
    assert not fresh_items["administrator"].done and "Nobody is invited" in fresh_items["administrator"].detail
    assert not fresh_items["companies"].done


def test_invitation_links_expire_after_the_configured_days(settings, tenant_a, monkeypatch):
    import time

    from copilot_admin.directory.selectors import invitation_resolve, invitation_token
    from tests.factories import add_member

    pending = add_member(tenant_a.tenant, "Technician", email="late@alpha.test", accepted=False)
    settings.INVITATION_MAX_AGE_DAYS = 2
    token = invitation_token(membership=pending)
    assert invitation_resolve(token=token) == pending
    now = time.time()
    monkeypatch.setattr(time, "time", lambda: now + 2 * 24 * 3600 - 60)
    assert invitation_resolve(token=token) == pending
    monkeypatch.setattr(time, "time", lambda: now + 2 * 24 * 3600 + 60)
    assert invitation_resolve(token=token) is None
    # The set-password link (an account the invitation created) follows the same setting.
    assert settings.PASSWORD_RESET_TIMEOUT == 14 * 24 * 3600  # the default, from INVITATION_MAX_AGE_DAYS=14
