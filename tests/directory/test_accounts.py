"""Accounts belong to their owners (issue 8, high): adding an e-mail that has an account makes a
pending invitation that grants nothing until the owner accepts, signed in as themselves; the
inviting tenant learns nothing of the account; tenant administrators change memberships, never
the account; an account's security events and lockouts reach only the tenants it accepted;
operators never become members; deactivation ends old credentials for good; the token limit."""

import re

import pytest
from django.conf import settings
from django.core import mail
from django.test import Client
from django.urls import reverse
from knox.models import AuthToken
from rest_framework.test import APIClient

from copilot_admin.audit.models import AuditEntry
from copilot_admin.core.errors import PermissionRefused
from copilot_admin.directory import services
from copilot_admin.directory.selectors import invitation_resolve, invitation_token
from copilot_admin.platform import services as platform_services
from tenants.models import Membership, User
from tenants.selectors import memberships_of_user
from tests.audit.conftest import entries
from tests.conftest import api_client_for
from tests.factories import PASSWORD, role_named

TOKEN_URL = "/api/v1/auth/token/"


def users_url(slug="alpha"):
    return reverse("api:users-list", kwargs={"tenant_slug": slug})


def invite(world, email, *, capture, full_name="Given By Admin", role="Technician"):
    api = api_client_for(world.members["admin"].user)
    with capture(execute=True):
        return api.post(users_url(world.tenant.slug), {
            "email": email, "full_name": full_name, "user_type": "internal",
            "role": role_named(world.tenant, role).pk,
        }, format="json")


def membership_of(world, email) -> Membership:
    return Membership.objects.for_tenant(world.tenant).select_related("user").get(user__email=email)


def accept_path(message) -> str:
    return re.search(r"https?://[^/\s]+(/invitations/[^/\s]+/)", message.body).group(1)


def login(client, email, password=PASSWORD, ip="203.0.113.1"):
    return client.post("/login/", {"username": email, "password": password}, REMOTE_ADDR=ip)


def token_for(email, password=PASSWORD, ip="203.0.113.2"):
    response = APIClient().post(TOKEN_URL, {"email": email, "password": password}, format="json", REMOTE_ADDR=ip)
    assert response.status_code == 201, response.json()
    return response.json()["token"]


def bearer(token) -> APIClient:
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return api


# -- 1. an existing account gets a pending invitation, and the admin learns nothing ------------


def test_inviting_an_existing_account_answers_exactly_like_a_new_address(
    tenant_a, tenant_b, django_capture_on_commit_callbacks
):
    victim = tenant_b.members["admin"].user
    name_before = victim.full_name
    existing = invite(tenant_a, "Admin@Bravo.test", capture=django_capture_on_commit_callbacks)
    fresh = invite(tenant_a, "Nobody.Yet@Elsewhere.test", capture=django_capture_on_commit_callbacks)
    assert existing.status_code == fresh.status_code == 201
    a, b = existing.json(), fresh.json()
    assert set(a) == set(b)
    for body in (a, b):
        body.pop("id"), body.pop("created_at")
    assert a.pop("email") == "admin@bravo.test" and b.pop("email") == "nobody.yet@elsewhere.test"
    assert a == b  # same fields, same values: no real name, no status of the account
    assert a["full_name"] == "" and a["status"] == "invited"
    victim.refresh_from_db()
    assert victim.full_name == name_before  # the admin's "name" never touches an existing account
    # Both addresses got one invitation e-mail.
    assert sorted(m.to[0] for m in mail.outbox) == ["admin@bravo.test", "nobody.yet@elsewhere.test"]
    # The list and the detail show the pending invitation without the account's name.
    listed = {u["email"]: u for u in api_client_for(tenant_a.members["admin"].user).get(users_url()).json()["results"]}
    assert listed["admin@bravo.test"]["full_name"] == "" and listed["admin@bravo.test"]["status"] == "invited"


def test_users_page_shows_an_invitation_without_the_accounts_name(client, tenant_a, tenant_b,
                                                                  django_capture_on_commit_callbacks):
    invite(tenant_a, "admin@bravo.test", capture=django_capture_on_commit_callbacks)
    client.force_login(tenant_a.members["admin"].user)
    url = reverse("directory:users", kwargs={"tenant_slug": "alpha"})
    page = client.get(url).content.decode()
    assert "admin@bravo.test" in page and "invited" in page
    assert tenant_b.members["admin"].user.full_name not in page
    # Searching by the name does not find the pending account either.
    found = client.get(url, {"q": tenant_b.members["admin"].user.full_name}).content.decode()
    assert "admin@bravo.test" not in found


def test_a_pending_invitation_grants_no_access_anywhere(tenant_a, tenant_b, django_capture_on_commit_callbacks):
    invite(tenant_a, "admin@bravo.test", capture=django_capture_on_commit_callbacks, role="Tenant Administrator")
    owner = tenant_b.members["admin"].user
    api = api_client_for(owner)
    assert api.get(reverse("api:settings", kwargs={"tenant_slug": "alpha"})).status_code == 404
    assert api.get(users_url()).status_code == 404
    call = api.post(reverse("api:copilot-summarize", kwargs={"tenant_slug": "alpha"}), {}, format="json")
    assert call.status_code == 404 and call.json()["error"]["code"]
    pages = Client()
    pages.force_login(owner)
    assert pages.get("/t/alpha/").status_code == 404
    assert pages.get("/t/alpha/users/").status_code == 404
    assert [m.tenant.slug for m in memberships_of_user(user=owner)] == ["bravo"]
    assert "Alpha MSP" not in pages.get("/t/bravo/").content.decode().split("<main", 1)[0]  # not in the switcher
    # Its logins are recorded in bravo only.
    login(Client(), "admin@bravo.test")
    assert AuditEntry.objects.for_chain(tenant_b.tenant).filter(action="auth.login").exists()
    assert not AuditEntry.objects.for_chain(tenant_a.tenant).filter(action__startswith="auth.").exists()


def test_the_owner_accepts_signed_in_as_themselves(tenant_a, tenant_b, django_capture_on_commit_callbacks):
    invite(tenant_a, "tech@bravo.test", capture=django_capture_on_commit_callbacks)
    path = accept_path(mail.outbox[-1])
    # Anonymous: sign in first.
    anonymous = Client().get(path)
    assert anonymous.status_code == 302 and anonymous["Location"].startswith("/login/")
    # Someone else signed in (even the inviting admin): asked to sign in as the invited account.
    other = Client()
    other.force_login(tenant_a.members["admin"].user)
    page = other.get(path)
    assert page.status_code == 403 and "Sign in as the invited account" in page.content.decode()
    assert "tech@bravo.test" not in page.content.decode()
    assert other.post(path).status_code == 403
    assert not membership_of(tenant_a, "tech@bravo.test").is_accepted
    # The owner sees the invitation on its home page and accepts it.
    owner = Client()
    owner.force_login(tenant_b.members["tech"].user)
    # The home page links the same invitation (its token is signed anew, so compare what it names).
    links = re.findall(r'href="(/invitations/[^"]+/)"', owner.get("/").content.decode())
    assert [invitation_resolve(token=link.split("/")[2]) for link in links] == [membership_of(tenant_a, "tech@bravo.test")]
    assert "Join Alpha MSP" in owner.get(path).content.decode()
    accepted = owner.post(path)
    assert accepted.status_code == 302 and accepted["Location"] == "/t/alpha/"
    membership = membership_of(tenant_a, "tech@bravo.test")
    assert membership.is_accepted and membership.grants_access
    assert owner.get("/t/alpha/").status_code == 200
    # Accepted: the tenant sees its name now; the link is spent.
    listed = {u["email"]: u for u in api_client_for(tenant_a.members["admin"].user).get(users_url()).json()["results"]}
    assert listed["tech@bravo.test"]["full_name"] == tenant_b.members["tech"].user.full_name
    assert listed["tech@bravo.test"]["status"] == "active"
    assert owner.get(path).status_code == 404


def test_a_forged_or_foreign_link_is_not_an_invitation(client, tenant_a, tenant_b):
    client.force_login(tenant_a.members["tech"].user)
    assert client.get(reverse("invitation_accept", args=["forged-token"])).status_code == 404
    # A link naming an accepted membership is spent.
    token = invitation_token(membership=tenant_a.members["tech"])
    assert client.get(reverse("invitation_accept", args=[token])).status_code == 404


def test_a_new_address_keeps_its_set_password_link_and_setting_it_accepts(
    client, tenant_a, tenant_b, django_capture_on_commit_callbacks
):
    invite(tenant_a, "fresh@person.test", capture=django_capture_on_commit_callbacks, full_name="Fresh Person")
    invite(tenant_b, "fresh@person.test", capture=django_capture_on_commit_callbacks)
    first = mail.outbox[0]
    assert first.to == ["fresh@person.test"] and "/password/set/" in first.body
    assert not membership_of(tenant_a, "fresh@person.test").is_accepted
    path = re.search(r"https?://[^/\s]+(/password/set/\S+/)", first.body).group(1)
    page = client.get(path, follow=True)
    form_url = page.redirect_chain[-1][0] if page.redirect_chain else path
    done = client.post(form_url, {"new_password1": "a-long-new-pass-123", "new_password2": "a-long-new-pass-123"})
    assert done.status_code == 302
    # Setting the password accepts the invitation that created the account, and only that one.
    assert membership_of(tenant_a, "fresh@person.test").is_accepted
    assert not membership_of(tenant_b, "fresh@person.test").is_accepted
    user = User.objects.get(email="fresh@person.test")
    assert user.full_name == "Fresh Person" and user.check_password("a-long-new-pass-123")
    assert "no longer valid" in client.get(path, follow=True).content.decode()  # single use


# -- 2. the account's own fields belong to its owner -------------------------------------------


def test_tenant_admin_cannot_rename_an_account(client, tenant_a):
    tech = tenant_a.members["tech"]
    name = tech.user.full_name
    url = reverse("api:users-detail", kwargs={"tenant_slug": "alpha", "pk": tech.pk})
    response = api_client_for(tenant_a.members["admin"].user).patch(url, {"full_name": "Renamed"}, format="json")
    assert response.status_code == 400 and "full_name" in response.json()["error"]["fields"]
    with pytest.raises(Exception):
        services.membership_update(actor=tenant_a.members["admin"], membership=tech, full_name="Renamed")
    client.force_login(tenant_a.members["admin"].user)
    edit = reverse("directory:user_edit", kwargs={"tenant_slug": "alpha", "pk": tech.pk})
    assert 'name="full_name"' not in client.get(edit).content.decode()
    client.post(edit, {"full_name": "Renamed", "role": tech.role.pk, "is_active": "on"})
    tech.user.refresh_from_db()
    assert tech.user.full_name == name


def test_profile_page_changes_own_name_and_password(client, tenant_a):
    user = tenant_a.members["tech"].user
    client.force_login(user)
    assert 'href="/account/"' in client.get("/t/alpha/").content.decode()  # in the navigation
    assert client.get("/account/").status_code == 200
    assert client.post("/account/", {"action": "name", "full_name": "Own Choice"}).status_code == 302
    user.refresh_from_db()
    assert user.full_name == "Own Choice"
    token = token_for(user.email)
    wrong = client.post("/account/", {"action": "password", "old_password": "not-it",
                                      "new_password1": "brand-new-pass-456", "new_password2": "brand-new-pass-456"})
    assert wrong.status_code == 400
    user.refresh_from_db()
    assert user.check_password(PASSWORD)
    done = client.post("/account/", {"action": "password", "old_password": PASSWORD,
                                     "new_password1": "brand-new-pass-456", "new_password2": "brand-new-pass-456"})
    assert done.status_code == 302
    user.refresh_from_db()
    assert user.check_password("brand-new-pass-456")
    assert client.get("/t/alpha/").status_code == 200  # this session stays
    assert bearer(token).get(reverse("api:settings", kwargs={"tenant_slug": "alpha"})).status_code == 401
    assert AuditEntry.objects.for_chain(tenant_a.tenant).filter(action="auth.password_change").count() == 1


def test_profile_needs_a_login(client):
    response = client.get("/account/")
    assert response.status_code == 302 and response["Location"].startswith("/login/")


# -- 3. security events and lockouts stay with the tenants the account accepted ------------------


def lock_out(email, prefix):
    """Lock the account from one address (lockouts are per account and address)."""
    for _ in range(settings.AXES_FAILURE_LIMIT):
        login(Client(), email, "wrong", ip=f"{prefix}.1")


def test_invited_accounts_lockout_is_invisible_and_cannot_be_lifted_by_the_inviting_tenant(
    tenant_a, tenant_b, django_capture_on_commit_callbacks
):
    invite(tenant_a, "admin@bravo.test", capture=django_capture_on_commit_callbacks)
    lock_out("admin@bravo.test", "198.18.0")
    assert not AuditEntry.objects.for_chain(tenant_a.tenant).filter(action__startswith="auth.").exists()
    assert AuditEntry.objects.for_chain(tenant_b.tenant).filter(action="auth.lockout").exists()
    assert AuditEntry.objects.for_chain(None).filter(action="auth.lockout").exists()  # and the platform log
    admin = Client()
    admin.force_login(tenant_a.members["admin"].user)
    assert "admin@bravo.test" not in admin.get("/t/alpha/security/").content.decode()
    assert admin.post("/t/alpha/security/", {"username": "admin@bravo.test"}).status_code == 404
    assert login(Client(), "admin@bravo.test", ip="198.18.0.1").status_code == 429  # still locked
    # Bravo, where the account is a member, sees and lifts it.
    bravo = Client()
    bravo.force_login(tenant_b.members["tech"].user)  # not an admin: refused
    assert bravo.post("/t/bravo/security/", {"username": "admin@bravo.test"}).status_code == 403
    owner_tenant_admin = Client()
    owner_tenant_admin.force_login(tenant_b.members["admin"].user)
    assert "admin@bravo.test" in owner_tenant_admin.get("/t/bravo/security/").content.decode()


def test_a_deactivated_members_lockout_is_not_the_tenants_business(tenant_a):
    tech = tenant_a.members["tech"]
    services.membership_update(actor=tenant_a.members["admin"], membership=tech, is_active=False)
    lock_out("tech@alpha.test", "198.18.1")
    admin = Client()
    admin.force_login(tenant_a.members["admin"].user)
    assert "tech@alpha.test" not in admin.get("/t/alpha/security/").content.decode()
    assert admin.post("/t/alpha/security/", {"username": "tech@alpha.test"}).status_code == 404


# -- 4. platform operators never become members ------------------------------------------------


def test_an_operator_address_gets_the_same_answer_and_never_becomes_a_member(
    client, tenant_a, operator, django_capture_on_commit_callbacks
):
    response = invite(tenant_a, operator.email, capture=django_capture_on_commit_callbacks)
    fresh = invite(tenant_a, "someone@new.test", capture=django_capture_on_commit_callbacks)
    assert response.status_code == fresh.status_code == 201
    body, other = response.json(), fresh.json()
    for b in (body, other):
        b.pop("id"), b.pop("created_at"), b.pop("email")
    assert body == other
    assert [m.to for m in mail.outbox] == [["someone@new.test"]]  # no invitation to accept reaches an operator
    membership = membership_of(tenant_a, operator.email)
    client.force_login(operator)
    path = reverse("invitation_accept", args=[invitation_token(membership=membership)])
    assert client.get(path).status_code == 403
    assert client.post(path).status_code == 403
    with pytest.raises(PermissionRefused):
        services.membership_accept(user=operator, membership=membership)
    membership.refresh_from_db()
    assert not membership.is_accepted
    assert client.get("/t/alpha/users/").status_code == 404
    # The tenant's root sends the operator to the console's page of the tenant, not inside it (issue 14).
    assert client.get("/t/alpha/")["Location"] == reverse("platform:tenant_overview", kwargs={"pk": tenant_a.tenant.pk})
    assert client.get("/platform/").status_code == 200  # the console, as before


# -- 5. deactivation ends old credentials for good -----------------------------------------------


def test_a_token_from_before_a_deactivation_never_works_again_in_that_tenant(tenant_a, tenant_b):
    tech = tenant_a.members["tech"]
    services.membership_create(actor=None, tenant=tenant_b.tenant, email=tech.user.email, user_type="internal",
                               role=role_named(tenant_b.tenant, "Technician"))  # a member elsewhere too
    old = bearer(token_for(tech.user.email))
    settings_url = reverse("api:settings", kwargs={"tenant_slug": "alpha"})
    assert old.get(settings_url).status_code == 200
    session = Client()
    login(session, tech.user.email)
    assert session.get("/t/alpha/").status_code == 200
    admin = tenant_a.members["admin"]
    services.membership_update(actor=admin, membership=tech, is_active=False)
    assert old.get(settings_url).status_code == 404
    services.membership_update(actor=admin, membership=tech, is_active=True)
    assert old.get(settings_url).status_code == 404  # re-activation does not revive it
    assert old.post(reverse("api:copilot-summarize", kwargs={"tenant_slug": "alpha"}), {}, format="json").status_code == 404
    assert session.get("/t/alpha/").status_code == 404
    # Elsewhere the credential is untouched; a fresh login works here again.
    assert old.get(reverse("api:settings", kwargs={"tenant_slug": "bravo"})).status_code == 200
    assert bearer(token_for(tech.user.email)).get(settings_url).status_code == 200
    fresh = Client()
    login(fresh, tech.user.email)
    assert fresh.get("/t/alpha/").status_code == 200


# -- 6. knox's per-user token limit ---------------------------------------------------------------


def test_token_limit_revokes_the_oldest_token(tenant_a, settings):
    limit = 20
    assert settings.REST_KNOX["TOKEN_LIMIT_PER_USER"] == limit
    tokens = [token_for("tech@alpha.test", ip=f"203.0.113.{i % 200}") for i in range(limit + 1)]
    user = tenant_a.members["tech"].user
    assert AuthToken.objects.filter(user=user).count() == limit
    url = reverse("api:settings", kwargs={"tenant_slug": "alpha"})
    assert bearer(tokens[0]).get(url).status_code == 401
    assert bearer(tokens[1]).get(url).status_code == 200 and bearer(tokens[-1]).get(url).status_code == 200
    revoked = AuditEntry.objects.for_chain(tenant_a.tenant).filter(action="auth.token_revoke").get()
    assert revoked.metadata["reason"] == "token_limit" and tokens[0].startswith(revoked.object_id)


def test_the_invitations_audit_entry_holds_nothing_of_the_existing_account(tenant_a, tenant_b,
                                                                          django_capture_on_commit_callbacks):
    def recorded_by(email):
        before = entries(tenant_a).count()
        invite(tenant_a, email, capture=django_capture_on_commit_callbacks)
        return list(entries(tenant_a).filter(seq__gt=before).values("action", "object_type", "object_repr", "changes"))

    existing, fresh = recorded_by("admin@bravo.test"), recorded_by("someone@new.test")
    name = tenant_b.members["admin"].user.full_name
    assert "admin@bravo.test" in str(existing) and name not in str(existing)

    def shape(rows):
        return [(r["action"], r["object_type"], sorted(r["changes"])) for r in rows]

    assert shape(existing) == shape(fresh)  # the tenant's log reads the same for both
    assert "created_account" not in str(existing) and "'user'" not in str(existing)
    assert not entries(tenant_a, action="user.create").exists()  # an account is recorded in the platform log
    platform = entries(None, action="user.invite")
    assert [(e.object_repr, e.metadata["account_created"]) for e in platform] == [
        ("admin@bravo.test", False), ("someone@new.test", True)]


def test_suspending_a_tenant_does_not_end_the_sessions_of_accounts_it_only_invited(
    tenant_a, tenant_b, django_capture_on_commit_callbacks
):
    invite(tenant_a, "admin@bravo.test", capture=django_capture_on_commit_callbacks)
    token, member_token = token_for("admin@bravo.test"), token_for("tech@alpha.test")
    platform_services.tenant_end_sessions(tenant=tenant_a.tenant)
    assert bearer(token).get(reverse("api:settings", kwargs={"tenant_slug": "bravo"})).status_code == 200
    assert bearer(member_token).get(reverse("api:settings", kwargs={"tenant_slug": "alpha"})).status_code == 401


def test_a_pending_invitation_can_be_sent_again(client, tenant_a, tenant_b, django_capture_on_commit_callbacks):
    invite(tenant_a, "tech@bravo.test", capture=django_capture_on_commit_callbacks)
    membership = membership_of(tenant_a, "tech@bravo.test")
    client.force_login(tenant_a.members["admin"].user)
    url = reverse("directory:user_edit", kwargs={"tenant_slug": "alpha", "pk": membership.pk})
    assert "Resend invitation" in client.get(url).content.decode()
    with django_capture_on_commit_callbacks(execute=True):
        assert client.post(url, {"action": "resend"}).status_code == 302
    assert [m.to for m in mail.outbox] == [["tech@bravo.test"], ["tech@bravo.test"]]
    assert "/invitations/" in mail.outbox[-1].body
    # Not for an accepted member.
    accepted = reverse("directory:user_edit", kwargs={"tenant_slug": "alpha", "pk": tenant_a.members["tech"].pk})
    with django_capture_on_commit_callbacks(execute=True):
        client.post(accepted, {"action": "resend"})
    assert len(mail.outbox) == 2


def test_neither_path_hashes_a_password(tenant_a, tenant_b, django_capture_on_commit_callbacks, monkeypatch):
    """The slow step that would tell a new address from an existing account is not taken."""
    from django.contrib.auth import hashers

    def refuse(*args, **kwargs):
        raise AssertionError("a password was hashed")

    for hasher in (hashers.MD5PasswordHasher, hashers.PBKDF2PasswordHasher):
        monkeypatch.setattr(hasher, "encode", refuse)
        monkeypatch.setattr(hasher, "verify", refuse)
    assert invite(tenant_a, "admin@bravo.test", capture=django_capture_on_commit_callbacks).status_code == 201
    assert invite(tenant_a, "new@address.test", capture=django_capture_on_commit_callbacks).status_code == 201


def test_deactivating_the_only_membership_ends_the_users_sessions_and_tokens(tenant_a, django_capture_on_commit_callbacks):
    from tenants.models import UserSession

    tech = tenant_a.members["tech"]
    token = token_for(tech.user.email)
    session = Client()
    login(session, tech.user.email)
    assert UserSession.objects.filter(user_id=tech.user_id).exists()
    with django_capture_on_commit_callbacks(execute=True):
        services.membership_update(actor=tenant_a.members["admin"], membership=tech, is_active=False)
    assert not UserSession.objects.filter(user_id=tech.user_id).exists()
    assert not AuthToken.objects.filter(user=tech.user).exists()
    assert bearer(token).delete(TOKEN_URL).status_code == 401
    ended = AuditEntry.objects.for_chain(tenant_a.tenant).filter(action="user.sessions_ended").get()
    assert ended.metadata["tokens"] == 1 and ended.metadata["sessions"] == 1


def test_the_invite_page_answers_alike_for_a_new_and_an_existing_address(client, tenant_a, tenant_b,
                                                                        django_capture_on_commit_callbacks):
    client.force_login(tenant_a.members["admin"].user)
    url = reverse("directory:user_create", kwargs={"tenant_slug": "alpha"})
    answers = []
    for email in ("admin@bravo.test", "brand@new.test"):
        with django_capture_on_commit_callbacks(execute=True):
            response = client.post(url, {"email": email, "full_name": "Typed", "user_type": "internal",
                                         "role": role_named(tenant_a.tenant, "Technician").pk}, follow=True)
        body = response.content.decode()
        alert = re.search(r'role="alert">\s*(.*?)<button', body, re.S).group(1).strip()
        answers.append((response.status_code, response.redirect_chain, alert.replace(email, "EMAIL")))
    assert answers[0] == answers[1]
    assert tenant_b.members["admin"].user.full_name not in client.get(reverse("directory:users", kwargs={"tenant_slug": "alpha"})).content.decode()
