"""Issue 14: bulk actions on the users list. Tick users (or "select all on this page", a plain
form), pick one action (deactivate, change role, re-send or revoke invitations); a confirmation
page of its own names how many users and what follows; confirming applies the action to all
of them or to none (`membership_bulk_apply`: each user checked like a single change, one
refusal refuses all, with the reason per user), at most 200 users, audited per user."""

import pytest
from django.core import mail
from django.urls import reverse

from copilot_admin.access.models import SecurityRole
from copilot_admin.core.errors import ApplicationError, Conflict, NotFound, PermissionRefused
from copilot_admin.core.forms import posted_id
from copilot_admin.directory import services
from copilot_admin.directory.services import BULK_LIMIT
from tenants.models import Membership
from tests.audit.conftest import entries
from tests.conftest import ROLES
from tests.factories import add_member, role_named

ACTIONS = ("deactivate", "role", "resend", "revoke")


def url(action):
    return reverse(f"directory:users_bulk_{action}", kwargs={"tenant_slug": "alpha"})


def users_url(query=""):
    return reverse("directory:users", kwargs={"tenant_slug": "alpha"}) + query


def members(world):
    return Membership.objects.for_tenant(world.tenant)


@pytest.fixture
def extra_techs(tenant_a):
    return [add_member(tenant_a.tenant, "Technician", email=f"tech{n}@alpha.test") for n in range(3)]


@pytest.fixture
def invited(tenant_a):
    return [add_member(tenant_a.tenant, "Technician", email=f"invited{n}@alpha.test", accepted=False)
            for n in range(2)]


def test_the_list_offers_checkboxes_and_a_select_all_that_needs_no_javascript(client, tenant_a, extra_techs):
    client.force_login(tenant_a.members["admin"].user)
    page = client.get(users_url("?q=tech")).content.decode()
    assert 'data-testid="bulk-form"' in page and "js/bulk_select.js" in page
    for member in extra_techs:
        assert f'name="ids" value="{member.pk}" form="bulk-form" data-bulk-item' in page
    assert f'value="{extra_techs[0].pk}" form="bulk-form" data-bulk-item aria-label="Select tech0@alpha.test">' in page
    # "Select all on this page" reloads the list (its filters kept) with every box ticked.
    assert '<input type="hidden" name="q" value="tech">' in page
    ticked = client.get(users_url("?q=tech&select=page")).content.decode()
    for member in extra_techs:
        assert f'value="{member.pk}" form="bulk-form" data-bulk-item aria-label="Select {member.user.email}" checked>' in ticked
    assert 'aria-label="Select admin@alpha.test"' not in ticked  # filtered out


def test_readers_get_no_bulk_form(client, tenant_a):
    client.force_login(tenant_a.members["auditor"].user)
    page = client.get(users_url()).content.decode()
    assert "bulk-form" not in page and "bulk_select.js" not in page


def test_bulk_deactivation_is_confirmed_on_its_own_page_then_applied_and_audited_per_user(
    client, tenant_a, extra_techs
):
    client.force_login(tenant_a.members["admin"].user)
    ids = [m.pk for m in extra_techs]
    page = client.get(url("deactivate"), {"ids": ids})
    body = page.content.decode()
    assert page.status_code == 200
    assert "Deactivate 3 users?" in body and "3 users lose access to Alpha MSP at once" in body
    assert "Their usage and audit history stay." in body
    assert all(m.user.email in body for m in extra_techs)
    assert members(tenant_a).filter(pk__in=ids, is_active=True).count() == 3  # the page changes nothing

    response = client.post(url("deactivate"), {"ids": ids})
    assert response.status_code == 302 and response["Location"] == users_url()
    assert members(tenant_a).filter(pk__in=ids, is_active=False, access_revoked_at__isnull=False).count() == 3
    # One entry per user (the same as deactivating each alone), and one naming the bulk action.
    for member in extra_techs:
        assert entries(tenant_a, action="membership.update", object_id=str(member.pk)).count() == 1
    bulk = entries(tenant_a, action="membership.bulk_deactivate").get()
    assert bulk.actor_email == "admin@alpha.test"
    assert sorted(bulk.metadata["ids"]) == sorted(ids) and bulk.metadata["count"] == 3
    assert "3 users deactivated." in client.get(users_url()).content.decode()


def test_one_refusal_refuses_all_and_the_page_says_who_and_why(client, tenant_a, extra_techs):
    admin = tenant_a.members["admin"]
    client.force_login(admin.user)
    ids = [m.pk for m in extra_techs] + [admin.pk]
    response = client.post(url("deactivate"), {"ids": ids})
    body = response.content.decode()
    assert response.status_code == 409
    assert "Nothing was changed; these users cannot be changed this way:" in body
    assert "admin@alpha.test: You cannot change your own role or deactivate yourself." in body
    assert members(tenant_a).filter(pk__in=ids, is_active=True).count() == 4
    assert not entries(tenant_a, action="membership.update", object_id__in=[str(pk) for pk in ids]).exists()


def test_the_service_is_all_or_nothing_and_names_every_refused_user(tenant_a, extra_techs, invited):
    admin = tenant_a.members["admin"]
    ids = [extra_techs[0].pk, invited[0].pk, admin.pk]
    with pytest.raises(Conflict) as refused:
        services.membership_bulk_apply(actor=admin, membership_ids=ids, action="deactivate")
    assert refused.value.code == "bulk_refused" and refused.value.status_code == 409
    assert set(refused.value.fields) == {"invited0@alpha.test", "admin@alpha.test"}
    assert "Nothing was changed: 2 of the 3 selected users" in refused.value.message
    assert members(tenant_a).get(pk=extra_techs[0].pk).is_active


def test_a_role_change_respects_user_types_the_co_managed_ceiling_and_no_escalation(tenant_a, extra_techs):
    admin = tenant_a.members["admin"]
    auditor_role = role_named(tenant_a.tenant, "Compliance Auditor")
    comanaged = tenant_a.members["comanaged"]
    # A co-managed user cannot take an internal role: the whole change is refused.
    with pytest.raises(Conflict) as refused:
        services.membership_bulk_apply(actor=admin, membership_ids=[extra_techs[0].pk, comanaged.pk],
                                       action="role", role=auditor_role)
    assert list(refused.value.fields) == ["comanaged@alpha.test"]
    assert members(tenant_a).get(pk=extra_techs[0].pk).role.name == "Technician"
    # Internal users only: applied.
    changed = services.membership_bulk_apply(actor=admin, membership_ids=[m.pk for m in extra_techs],
                                             action="role", role=auditor_role)
    assert {m.pk for m in changed} == {m.pk for m in extra_techs}
    assert set(members(tenant_a).filter(pk__in=[m.pk for m in extra_techs]).values_list("role__name", flat=True)) == {
        "Compliance Auditor"}

    # A user manager who holds less than an administrator: it may not hand out the administrator
    # role, nor touch a user holding more than it holds.
    manager_role = SecurityRole.objects.for_tenant(tenant_a.tenant).create(
        tenant=tenant_a.tenant, name="User manager", user_type="internal",
        permissions=[*role_named(tenant_a.tenant, "Technician").permissions, "admin.users", "directory.view"])
    manager = add_member(tenant_a.tenant, "User manager", email="manager@alpha.test")
    assert manager.role == manager_role
    admin_role = role_named(tenant_a.tenant, "Tenant Administrator")
    with pytest.raises(Conflict) as escalation:
        services.membership_bulk_apply(actor=manager, membership_ids=[tenant_a.members["tech"].pk],
                                       action="role", role=admin_role)
    assert "You cannot grant permissions you do not hold" in escalation.value.fields["tech@alpha.test"][0]
    with pytest.raises(Conflict) as over:
        services.membership_bulk_apply(actor=manager, membership_ids=[admin.pk, tenant_a.members["tech"].pk],
                                       action="deactivate")
    assert list(over.value.fields) == ["admin@alpha.test"]
    assert members(tenant_a).get(pk=tenant_a.members["tech"].pk).is_active


def test_the_role_page_asks_for_the_role_and_names_it(client, tenant_a, extra_techs):
    client.force_login(tenant_a.members["admin"].user)
    auditor_role = role_named(tenant_a.tenant, "Compliance Auditor")
    ids = [m.pk for m in extra_techs[:2]]
    body = client.get(url("role"), {"ids": ids, "role": auditor_role.pk}).content.decode()
    assert "Change the role of 2 users?" in body and "2 users get the role Compliance Auditor" in body
    assert f'<option value="{auditor_role.pk}" selected>' in body
    # Without a role chosen the confirmation is refused with a sentence, nothing changes.
    response = client.post(url("role"), {"ids": ids})
    assert response.status_code == 400 and "Choose the new role." in response.content.decode()
    response = client.post(url("role"), {"ids": ids, "role": auditor_role.pk})
    assert response.status_code == 302
    assert set(members(tenant_a).filter(pk__in=ids).values_list("role", flat=True)) == {auditor_role.pk}
    assert "2 users now hold the role Compliance Auditor." in client.get(users_url()).content.decode()


def test_invitations_are_resent_and_revoked_in_bulk(client, tenant_a, invited, django_capture_on_commit_callbacks):
    client.force_login(tenant_a.members["admin"].user)
    ids = [m.pk for m in invited]
    assert "2 users get the invitation e-mail again" in client.get(url("resend"), {"ids": ids}).content.decode()
    with django_capture_on_commit_callbacks(execute=True):
        assert client.post(url("resend"), {"ids": ids}).status_code == 302
    assert sorted(m.to[0] for m in mail.outbox) == ["invited0@alpha.test", "invited1@alpha.test"]
    assert entries(tenant_a, action="membership.invitation_resend").count() == 2

    # An accepted user in the selection: nothing is revoked, no e-mail goes out.
    mail.outbox.clear()
    with django_capture_on_commit_callbacks(execute=True):
        refused = client.post(url("resend"), {"ids": [*ids, tenant_a.members["tech"].pk]})
    assert refused.status_code == 409 and "tech@alpha.test: This user accepted the invitation already." in (
        refused.content.decode())
    assert mail.outbox == []

    body = client.get(url("revoke"), {"ids": ids}).content.decode()
    assert "Revoke the invitation of 2 users?" in body and "The invitation links sent to 2 users stop working." in body
    assert client.post(url("revoke"), {"ids": ids}).status_code == 302
    assert not members(tenant_a).filter(pk__in=ids).exists()
    assert entries(tenant_a, action="membership.delete").count() == 2


@pytest.mark.parametrize("action", ACTIONS)
def test_a_foreign_or_missing_id_makes_the_page_404_and_changes_nothing(client, tenant_a, tenant_b, action):
    client.force_login(tenant_a.members["admin"].user)
    own, foreign = tenant_a.members["tech"].pk, tenant_b.members["tech"].pk
    role = role_named(tenant_a.tenant, "Technician").pk
    for ids in ([own, foreign], [own, 10**9]):
        assert client.get(url(action), {"ids": ids, "role": role}).status_code == 404
        assert client.post(url(action), {"ids": ids, "role": role}).status_code == 404
    assert members(tenant_a).get(pk=own).is_active and members(tenant_b).get(pk=foreign).is_active
    with pytest.raises(NotFound):
        services.membership_bulk_apply(actor=tenant_a.members["admin"], membership_ids=[foreign], action=action,
                                       role=role_named(tenant_a.tenant, "Technician"))


@pytest.mark.parametrize("role", [r for r in ROLES if r != "admin"])
@pytest.mark.parametrize("action", ACTIONS)
def test_members_without_admin_users_may_not(client, tenant_a, role, action):
    member = tenant_a.members[role]
    client.force_login(member.user)
    ids = {"ids": [tenant_a.members["tech"].pk]}
    assert client.get(url(action), ids).status_code == 403
    assert client.post(url(action), ids).status_code == 403
    assert members(tenant_a).get(pk=tenant_a.members["tech"].pk).is_active
    with pytest.raises(PermissionRefused):
        services.membership_bulk_apply(actor=member, membership_ids=ids["ids"], action="deactivate")


def test_at_most_200_users_per_action(client, tenant_a):
    admin = tenant_a.members["admin"]
    too_many = list(range(1, BULK_LIMIT + 2))
    with pytest.raises(ApplicationError) as refused:
        services.membership_bulk_apply(actor=admin, membership_ids=too_many, action="deactivate")
    assert refused.value.code == "too_many" and "At most 200 users can be changed at once; 201" in refused.value.message
    # 200 is within the limit: these ids are then looked up (and not found).
    with pytest.raises(NotFound):
        services.membership_bulk_apply(actor=admin, membership_ids=too_many[:BULK_LIMIT], action="deactivate")
    client.force_login(admin.user)
    page = client.get(url("deactivate"), {"ids": too_many}).content.decode()
    assert "At most 200 users can be changed at once; 201 were selected." in page
    assert 'class="btn btn-danger" type="submit"' not in page
    response = client.post(url("deactivate"), {"ids": too_many})
    assert response.status_code == 400


def test_nothing_selected_says_so(client, tenant_a):
    client.force_login(tenant_a.members["admin"].user)
    page = client.get(url("deactivate"))
    assert page.status_code == 200 and "No users were selected" in page.content.decode()
    assert client.post(url("deactivate")).status_code == 400


def test_one_user_reads_in_the_singular(client, tenant_a):
    client.force_login(tenant_a.members["admin"].user)
    tech = tenant_a.members["tech"]
    body = client.get(url("deactivate"), {"ids": [tech.pk]}).content.decode()
    assert "Deactivate 1 user?" in body and "1 user loses access to Alpha MSP at once" in body
    auditor_role = role_named(tenant_a.tenant, "Compliance Auditor")
    client.post(url("role"), {"ids": [tech.pk], "role": auditor_role.pk})
    assert "1 user now holds the role Compliance Auditor." in client.get(users_url()).content.decode()


def test_posted_ids_that_are_not_plain_numbers_are_dropped_not_a_500(client, tenant_a, extra_techs):
    # "²" is a digit to str.isdigit but not to int(): core.forms.posted_id drops it (as it
    # drops "1e3" and a number beyond a bigint) instead of failing the request.
    assert [posted_id(v) for v in ("42", "²", "1e3", "-1", "9" * 19, None)] == [42, None, None, None, None, None]
    client.force_login(tenant_a.members["admin"].user)
    page = client.get(url("role"), {"ids": ["²", "1e3", str(extra_techs[0].pk)], "role": "²"})
    assert page.status_code == 200
    assert "Change the role of 1 user?" in page.content.decode()
