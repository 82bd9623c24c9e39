"""Integration keys (PSA servers): created by `admin.integrations` holders, shown once, stored
hashed; a copilot call made with one acts for the member named in `acting_user` (the whole
access chain runs for that member); a read key reads what an auditor reads; keys never work on
another tenant, from outside their allow-list, expired, revoked, or beyond their own rate."""

from copy import deepcopy
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone
from knox.crypto import hash_token
from rest_framework.test import APIClient

from copilot_admin.audit.models import AuditEntry
from copilot_admin.identity import delegation, services
from copilot_admin.identity.models import IntegrationKey
from copilot_admin.usage import services as usage
from copilot_admin.usage.models import UsageRecord
from tests.conftest import api_client_for
from tests.factories import add_member


def keys_url(slug="alpha", pk=None):
    if pk is None:
        return reverse("api:integration-keys-list", kwargs={"tenant_slug": slug})
    return reverse("api:integration-keys-detail", kwargs={"tenant_slug": slug, "pk": pk})


def copilot_url(slug="alpha", feature="summarize"):
    return reverse(f"api:copilot-{feature}", kwargs={"tenant_slug": slug})


def ticket(company, acting_user=None):
    body = {"company": str(company.pk), "issue": {"summary": "VPN drops every hour", "description": "Since Monday."}}
    if acting_user is not None:
        body["acting_user"] = acting_user
    return body


def key_client(secret, remote_addr="127.0.0.1") -> APIClient:
    client = APIClient(REMOTE_ADDR=remote_addr)
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    return client


def make_key(world, scopes=("copilot",), **options):
    key, secret = services.integration_key_create(
        actor=world.members["admin"], name="PSA server", scopes=list(scopes), **options
    )
    return key, secret


def error_code(response, status):
    assert response.status_code == status, (response.status_code, response.content[:300])
    return response.json()["error"]["code"]


@pytest.fixture
def us_deployment(deployment_factory, simulator_url, sim):
    return deployment_factory(zone="us", name="us-primary", endpoint=simulator_url, deployment="dep-us", priority=1)


# --- managing keys ----------------------------------------------------------------------------


def test_create_shows_the_key_once_and_stores_only_its_hash(tenant_a):
    admin = api_client_for(tenant_a.members["admin"].user)
    response = admin.post(keys_url(), {"name": "Autotask", "scopes": ["copilot", "read"],
                                       "allowed_addresses": ["10.0.0.0/24", "192.0.2.7"]}, format="json")
    assert response.status_code == 201, response.content
    body = response.json()
    secret = body["key"]
    assert secret.startswith("cak_") and len(secret) == 4 + 64
    assert body["prefix"] == secret[:16] and body["scopes"] == ["copilot", "read"]
    assert body["allowed_addresses"] == ["10.0.0.0/24", "192.0.2.7/32"]
    assert body["created_by"] == "admin@alpha.test" and body["is_active"] is True

    key = IntegrationKey.objects.for_tenant(tenant_a.tenant).get(pk=body["id"])
    assert key.digest == hash_token(secret) and secret not in str(vars(key))

    listed = admin.get(keys_url()).json()
    rows = listed["results"] if isinstance(listed, dict) else listed
    assert [row["prefix"] for row in rows] == [secret[:16]]
    assert "key" not in rows[0] and secret not in str(listed) and "digest" not in rows[0]
    assert set(rows[0]) >= {"prefix", "last_used_at", "created_by", "created_at", "revoked_at"}

    entry = AuditEntry.objects.for_tenant(tenant_a.tenant).get(action="integration_key.create")
    assert entry.actor_email == "admin@alpha.test"
    assert secret not in str(entry.changes) and key.digest not in str(entry.changes)
    assert entry.changes["name"][1] == "Autotask"


@pytest.mark.parametrize("body,field", [
    ({"name": "x", "scopes": []}, "scopes"),
    ({"name": "x", "scopes": ["write"]}, "scopes"),
    ({"name": "", "scopes": ["read"]}, "name"),
    ({"name": "x", "scopes": ["read"], "allowed_addresses": ["10.0.0.1/8"]}, "allowed_addresses"),
    ({"name": "x", "scopes": ["read"], "allowed_addresses": ["not-an-address"]}, "allowed_addresses"),
    ({"name": "x", "scopes": ["read"], "expires_at": "2001-01-01T00:00:00Z"}, "expires_at"),
])
def test_create_refuses_bad_input(tenant_a, body, field):
    response = api_client_for(tenant_a.members["admin"].user).post(keys_url(), body, format="json")
    assert response.status_code == 400, response.content
    assert field in response.json()["error"].get("fields", {})
    assert not IntegrationKey.objects.for_tenant(tenant_a.tenant).exists()


@pytest.mark.parametrize("role", ["tech", "auditor", "comanaged"])
def test_only_integration_admins_manage_keys(tenant_a, role):
    key, _ = make_key(tenant_a)
    client = api_client_for(tenant_a.members[role].user)
    assert client.get(keys_url()).status_code == 403
    assert client.post(keys_url(), {"name": "x", "scopes": ["read"]}, format="json").status_code == 403
    assert client.delete(keys_url(pk=key.pk)).status_code == 403
    with pytest.raises(Exception) as refused:
        services.integration_key_create(actor=tenant_a.members[role], name="x", scopes=["read"])
    assert getattr(refused.value, "code", "") == "permission_denied"


def test_revoke_is_audited_and_the_key_stops_working(tenant_a, us_deployment):
    key, secret = make_key(tenant_a)
    client = key_client(secret)
    assert client.post(copilot_url(), ticket(tenant_a.companies[0], "tech@alpha.test"), format="json").status_code == 200
    admin = api_client_for(tenant_a.members["admin"].user)
    assert admin.delete(keys_url(pk=key.pk)).status_code == 204
    assert error_code(client.post(copilot_url(), ticket(tenant_a.companies[0], "tech@alpha.test"), format="json"),
                      401) == "authentication_failed"
    entry = AuditEntry.objects.for_tenant(tenant_a.tenant).get(action="integration_key.revoke")
    assert entry.actor_email == "admin@alpha.test" and "revoked_at" in entry.changes
    assert admin.get(keys_url(pk=key.pk)).json()["is_active"] is False


def test_a_foreign_tenants_key_is_not_found_for_its_admin(tenant_a, tenant_b):
    key, _ = make_key(tenant_b)
    admin = api_client_for(tenant_a.members["admin"].user)
    assert admin.get(keys_url(pk=key.pk)).status_code == 404
    assert admin.delete(keys_url(pk=key.pk)).status_code == 404
    assert IntegrationKey.objects.for_tenant(tenant_b.tenant).get(pk=key.pk).revoked_at is None


# --- the copilot call with a key ---------------------------------------------------------------


def test_copilot_call_acts_for_the_member_and_names_both(tenant_a, us_deployment):
    key, secret = make_key(tenant_a)
    response = key_client(secret).post(copilot_url(), ticket(tenant_a.companies[0], "TECH@alpha.test"), format="json")
    assert response.status_code == 200, response.content
    record = UsageRecord.objects.for_tenant(tenant_a.tenant).get(request_id=response.json()["request_id"])
    assert record.membership_id == tenant_a.members["tech"].pk and record.integration_key == key.key_id
    entry = AuditEntry.objects.for_tenant(tenant_a.tenant).get(action="copilot.call")
    assert entry.actor_email == "tech@alpha.test" and entry.metadata["integration_key"] == key.key_id
    key.refresh_from_db()
    assert key.last_used_at is not None


def test_a_members_own_call_names_no_key(tenant_a, us_deployment):
    response = api_client_for(tenant_a.members["tech"].user).post(copilot_url(), ticket(tenant_a.companies[0]),
                                                                   format="json")
    assert response.status_code == 200
    record = UsageRecord.objects.for_tenant(tenant_a.tenant).get(request_id=response.json()["request_id"])
    assert record.integration_key == ""
    assert "integration_key" not in AuditEntry.objects.for_tenant(tenant_a.tenant).get(action="copilot.call").metadata


def test_acting_member_unknown_inactive_pending_or_foreign_is_permission_denied(tenant_a, tenant_b, us_deployment, sim):
    key, secret = make_key(tenant_a)
    gone = tenant_a.members["tech"]
    add_member(tenant_a.tenant, "Technician", email="pending@alpha.test", accepted=False)
    inactive = add_member(tenant_a.tenant, "Technician", email="inactive@alpha.test")
    inactive.is_active = False
    inactive.save()
    client = key_client(secret)
    for email in ("nobody@alpha.test", "inactive@alpha.test", "pending@alpha.test", "tech@bravo.test"):
        assert error_code(client.post(copilot_url(), ticket(tenant_a.companies[0], email), format="json"),
                          403) == "permission_denied", email
    refusals = AuditEntry.objects.for_tenant(tenant_a.tenant).filter(action="integration_key.refused")
    assert refusals.count() == 4 and {e.object_id for e in refusals} == {key.key_id}
    assert sim.requests() == [] and gone.is_active


def test_a_known_acting_email_is_checked_again_on_every_call(tenant_a, us_deployment, sim):
    """The process keeps which member an e-mail named (a hint, to skip a query on warm calls);
    each call still acts only for an active member who has that e-mail now: when the address
    moves to another member the call acts for them, when that member is deactivated it is refused."""
    _, secret = make_key(tenant_a)
    client = key_client(secret)
    company = tenant_a.companies[0]

    def acted_for(response):
        assert response.status_code == 200, response.content[:300]
        return UsageRecord.objects.for_tenant(tenant_a.tenant).get(request_id=response.json()["request_id"]).membership_id

    first = tenant_a.members["tech"]
    for _ in range(2):  # the second call takes the hint
        assert acted_for(client.post(copilot_url(), ticket(company, "tech@alpha.test"), format="json")) == first.pk
    first.user.email = "old-tech@alpha.test"
    first.user.save()
    second = add_member(tenant_a.tenant, "Technician", email="tech@alpha.test")
    assert acted_for(client.post(copilot_url(), ticket(company, "tech@alpha.test"), format="json")) == second.pk
    assert acted_for(client.post(copilot_url(), ticket(company, "tech@alpha.test"), format="json")) == second.pk
    second.is_active = False
    second.save()
    response = client.post(copilot_url(), ticket(company, "tech@alpha.test"), format="json")
    assert error_code(response, 403) == "permission_denied"
    response = client.post(copilot_url(), ticket(company, "old-tech@alpha.test"), format="json")
    assert acted_for(response) == first.pk


def test_acting_user_is_required(tenant_a, us_deployment):
    _, secret = make_key(tenant_a)
    response = key_client(secret).post(copilot_url(), ticket(tenant_a.companies[0]), format="json")
    assert error_code(response, 400) == "invalid_payload"
    assert "acting_user" in response.json()["error"]["fields"]


def test_the_acting_members_role_decides(tenant_a, us_deployment, sim):
    _, secret = make_key(tenant_a)
    response = key_client(secret).post(copilot_url(), ticket(tenant_a.companies[0], "auditor@alpha.test"),
                                       format="json")
    assert error_code(response, 403) == "permission_denied"
    entry = AuditEntry.objects.for_tenant(tenant_a.tenant).get(action="copilot.call")
    assert entry.actor_email == "auditor@alpha.test" and entry.outcome == "denied"
    assert sim.requests() == []


def test_a_co_managed_member_keeps_its_company_scope(tenant_a, us_deployment, sim):
    _, secret = make_key(tenant_a)
    client = key_client(secret)
    in_scope = client.post(copilot_url(), ticket(tenant_a.companies[0], "comanaged@alpha.test"), format="json")
    assert in_scope.status_code == 200
    out = client.post(copilot_url(), ticket(tenant_a.companies[1], "comanaged@alpha.test"), format="json")
    assert error_code(out, 403) == "company_out_of_scope"
    assert len(sim.requests()) == 1


def test_a_suspended_member_stays_suspended(tenant_a, us_deployment, monkeypatch):
    _, secret = make_key(tenant_a)
    monkeypatch.setattr(usage, "copilot_access_state", lambda membership: "suspended")
    response = key_client(secret).post(copilot_url(), ticket(tenant_a.companies[0], "tech@alpha.test"), format="json")
    assert error_code(response, 403) == "access_suspended"


def test_the_acting_members_limits_apply(tenant_a, us_deployment, monkeypatch):
    _, secret = make_key(tenant_a)
    seen = []

    def refuse(*, membership, **kwargs):
        seen.append(membership.pk)
        raise usage.RateLimitExceeded(retry_after=9)

    monkeypatch.setattr(usage, "limits_reserve", refuse)
    response = key_client(secret).post(copilot_url(), ticket(tenant_a.companies[0], "tech@alpha.test"), format="json")
    assert error_code(response, 429) == "rate_limited" and response["Retry-After"] == "9"
    assert seen == [tenant_a.members["tech"].pk]
    record = UsageRecord.objects.for_tenant(tenant_a.tenant).get()
    assert record.outcome == "refused" and record.integration_key != ""


# --- the key itself: expiry, revocation, addresses, tenant, scopes, rate ---------------------------


def test_an_expired_key_is_refused(tenant_a, us_deployment):
    key, secret = make_key(tenant_a, expires_at=timezone.now() + timedelta(hours=1))
    IntegrationKey.objects.for_tenant(tenant_a.tenant).filter(pk=key.pk).update(
        expires_at=timezone.now() - timedelta(seconds=1)
    )
    response = key_client(secret).post(copilot_url(), ticket(tenant_a.companies[0], "tech@alpha.test"), format="json")
    assert error_code(response, 401) == "authentication_failed"
    assert "expired" in response.json()["error"]["message"]


def test_a_wrong_secret_with_a_real_prefix_is_refused(tenant_a, us_deployment):
    _, secret = make_key(tenant_a)
    forged = secret[:16] + ("0" if secret[16] != "0" else "1") + secret[17:]
    response = key_client(forged).post(copilot_url(), ticket(tenant_a.companies[0], "tech@alpha.test"), format="json")
    assert error_code(response, 401) == "authentication_failed"


def test_the_address_allow_list(tenant_a, us_deployment, sim):
    _, secret = make_key(tenant_a, allowed_addresses=["203.0.113.0/28", "2001:db8::/64"])
    body = ticket(tenant_a.companies[0], "tech@alpha.test")
    assert key_client(secret, "203.0.113.9").post(copilot_url(), body, format="json").status_code == 200
    assert key_client(secret, "2001:db8::5").post(copilot_url(), body, format="json").status_code == 200
    outside = key_client(secret, "203.0.113.16").post(copilot_url(), body, format="json")
    assert error_code(outside, 403) == "address_not_allowed"
    assert len(sim.requests()) == 2
    refused = AuditEntry.objects.for_tenant(tenant_a.tenant).get(action="integration_key.refused")
    assert refused.metadata["code"] == "address_not_allowed" and refused.remote_addr == "203.0.113.16"


def test_a_key_never_works_on_another_tenant(tenant_a, tenant_b, us_deployment, sim):
    _, secret = make_key(tenant_a, scopes=("copilot", "read"))
    client = key_client(secret)
    for email in ("tech@bravo.test", "tech@alpha.test"):
        response = client.post(copilot_url("bravo"), ticket(tenant_b.companies[0], email), format="json")
        assert error_code(response, 404) == "not_found"
    for name in ("api:audit-list", "api:usage", "api:companies-list"):
        assert client.get(reverse(name, kwargs={"tenant_slug": "bravo"})).status_code == 404
    assert sim.requests() == []


def test_a_key_reaches_no_platform_route_and_is_no_api_token(tenant_a):
    _, secret = make_key(tenant_a, scopes=("copilot", "read"))
    client = key_client(secret)
    assert client.get(reverse("api:platform-tenants-list")).status_code == 404
    assert client.delete(reverse("api:auth-token")).status_code == 401


def test_a_copilot_key_reads_nothing(tenant_a):
    _, secret = make_key(tenant_a, scopes=("copilot",))
    client = key_client(secret)
    for name in ("api:audit-list", "api:usage", "api:companies-list", "api:settings", "api:integration-keys-list"):
        assert error_code(client.get(reverse(name, kwargs={"tenant_slug": "alpha"})), 403) == "permission_denied"


def test_a_read_key_reads_what_an_auditor_reads_and_writes_nothing(tenant_a, us_deployment, sim):
    _, secret = make_key(tenant_a, scopes=("read",))
    client = key_client(secret)
    slug = {"tenant_slug": "alpha"}
    # The auditor reads the directory too (directory.view): users and roles, read-only.
    for name in ("api:audit-list", "api:usage", "api:companies-list", "api:settings", "api:limits",
                 "api:users-list", "api:roles-list"):
        assert client.get(reverse(name, kwargs=slug)).status_code == 200, name
    export = client.get(reverse("api:audit-export", kwargs=slug), {"format": "jsonl"})
    assert export.status_code == 200 and b"integration_key.create" in b"".join(export.streaming_content)
    # What an auditor does not hold: managing keys (and any write to users or roles, below).
    for name in ("api:integration-keys-list",):
        assert error_code(client.get(reverse(name, kwargs=slug)), 403) == "permission_denied", name
    writes = [
        client.post(reverse("api:companies-list", kwargs=slug), {"name": "Evil Corp"}, format="json"),
        client.post(reverse("api:roles-list", kwargs=slug), {"name": "Evil", "user_type": "internal"}, format="json"),
        client.patch(reverse("api:users-detail", kwargs={**slug, "pk": tenant_a.members["tech"].pk}),
                     {"is_active": False}, format="json"),
        client.patch(reverse("api:settings", kwargs=slug), {"copilot_enabled": False}, format="json"),
        client.patch(reverse("api:limits", kwargs=slug), {"user_requests_per_minute": 1}, format="json"),
        client.post(keys_url(), {"name": "another", "scopes": ["copilot"]}, format="json"),
        client.post(copilot_url(), ticket(tenant_a.companies[0], "tech@alpha.test"), format="json"),
    ]
    assert [error_code(r, 403) for r in writes] == ["permission_denied"] * len(writes)
    tenant_a.tenant.refresh_from_db()
    assert tenant_a.tenant.copilot_enabled and sim.requests() == []


def test_a_read_key_reads_no_more_than_its_creator_holds(tenant_a):
    _, secret = make_key(tenant_a, scopes=("read",))
    creator = tenant_a.members["admin"]
    creator.is_active = False
    creator.save()
    response = key_client(secret).get(reverse("api:audit-list", kwargs={"tenant_slug": "alpha"}))
    assert error_code(response, 403) == "permission_denied"


def test_each_key_has_its_own_rate(tenant_a, us_deployment, settings, monkeypatch):
    settings.INTEGRATION_KEY_REQUESTS_PER_MINUTE = 2
    monkeypatch.setattr(delegation, "_clock", lambda: 1_800_000_030.0)  # one fixed minute, whatever the wall clock
    _, first = make_key(tenant_a)
    _, second = make_key(tenant_a)
    body = ticket(tenant_a.companies[0], "tech@alpha.test")
    answers = [key_client(first).post(copilot_url(), body, format="json") for _ in range(3)]
    assert [r.status_code for r in answers] == [200, 200, 429]
    assert answers[2].json()["error"]["code"] == "rate_limited" and answers[2]["Retry-After"] == "30"
    assert key_client(second).post(copilot_url(), body, format="json").status_code == 200
    refused = AuditEntry.objects.for_tenant(tenant_a.tenant).get(action="integration_key.refused")
    assert refused.metadata["code"] == "rate_limited"


# --- the page -------------------------------------------------------------------------------------


def test_page_creates_shows_the_key_once_and_revokes(client, tenant_a):
    client.force_login(tenant_a.members["admin"].user)
    url = reverse("identity:integration_keys", kwargs={"tenant_slug": "alpha"})
    response = client.post(url, {"action": "create", "name": "ConnectWise", "scopes": ["copilot"],
                                 "allowed_addresses": "198.51.100.0/24\n"})
    assert response.status_code == 200 and "no-store" in response["Cache-Control"]
    key = IntegrationKey.objects.for_tenant(tenant_a.tenant).get()
    page = response.content.decode()
    secret = page.split('id="new-integration-key" class="user-select-all">')[1].split("<")[0]
    assert secret.startswith(key.key_id) and hash_token(secret) == key.digest
    assert key.allowed_addresses == ["198.51.100.0/24"]
    again = client.get(url).content.decode()
    assert key.key_id in again and secret not in again
    assert client.post(url, {"action": "revoke", "key": str(key.pk)}).status_code == 302
    key.refresh_from_db()
    assert key.revoked_at is not None


def test_page_shows_service_refusals_on_the_form(client, tenant_a):
    client.force_login(tenant_a.members["admin"].user)
    url = reverse("identity:integration_keys", kwargs={"tenant_slug": "alpha"})
    response = client.post(url, {"action": "create", "name": "x", "scopes": ["read"], "allowed_addresses": "nope"})
    assert response.status_code == 200 and "Not an address" in response.content.decode()
    assert not IntegrationKey.objects.for_tenant(tenant_a.tenant).exists()


# -- the key read from the versioned cache (identity.selectors.integration_key_by_secret) -------------

def _key_selects(captured) -> list[str]:
    return [q["sql"] for q in captured.captured_queries
            if q["sql"].lstrip().upper().startswith("SELECT") and "identity_integrationkey" in q["sql"]]


def _revoke(world, key):
    services.integration_key_revoke(actor=world.members["admin"], key=key)


def _delete(world, key):
    IntegrationKey.objects.for_tenant(world.tenant).filter(pk=key.pk).delete()


def _rotate_digest(world, key):
    """A rotation gives the key a new secret under the same head (the old secret stops working)."""
    key = IntegrationKey.objects.for_tenant(world.tenant).get(pk=key.pk)
    key.digest = hash_token(key.key_id + "0" * 60)
    key.save(update_fields=["digest"])


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
@pytest.mark.parametrize("change", [_revoke, _delete, _rotate_digest], ids=["revoke", "delete", "rotate"])
def test_a_cached_key_is_refused_on_the_next_call_after_it_changes(tenant_a, us_deployment, sim, change):
    """Runs in autocommit, as requests do, so the key's row is really cached: the second call
    reads no key row, and the change's version bump makes the third read it again."""
    key, secret = make_key(tenant_a)
    client = key_client(secret)
    body = ticket(tenant_a.companies[0], "tech@alpha.test")
    assert client.post(copilot_url(), body, format="json").status_code == 200
    with CaptureQueriesContext(connection) as captured:
        assert client.post(copilot_url(), body, format="json").status_code == 200
    assert _key_selects(captured) == []  # answered from the cache

    change(tenant_a, key)

    assert error_code(client.post(copilot_url(), body, format="json"), 401) == "authentication_failed"


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_a_cached_key_still_checks_the_secret_on_every_call(tenant_a, us_deployment, sim):
    _, secret = make_key(tenant_a)
    body = ticket(tenant_a.companies[0], "tech@alpha.test")
    for _ in range(2):  # cached by now
        assert key_client(secret).post(copilot_url(), body, format="json").status_code == 200
    forged = secret[:16] + ("0" if secret[16] != "0" else "1") + secret[17:]  # the real head, a wrong secret
    assert error_code(key_client(forged).post(copilot_url(), body, format="json"), 401) == "authentication_failed"
    unknown = "cak_" + "f" * 64
    assert error_code(key_client(unknown).post(copilot_url(), body, format="json"), 401) == "authentication_failed"


def test_last_use_is_written_at_most_once_a_minute_per_key(tenant_a):
    """The key a call holds may be a cached copy with an old `last_used_at`: the shared cache
    decides which call of the minute writes it."""
    key, _ = make_key(tenant_a)
    stale = IntegrationKey.objects.for_tenant(tenant_a.tenant).select_related("tenant").get(pk=key.pk)
    minute = timezone.now().replace(second=0, microsecond=0) + timedelta(minutes=5)

    def uses(*seconds) -> int:
        with CaptureQueriesContext(connection) as captured:
            for second in seconds:
                copy = deepcopy(stale)  # each call's own copy of the cached row
                services.integration_key_mark_used(key=copy, now=minute + timedelta(seconds=second))
        return sum(1 for q in captured.captured_queries if q["sql"].lstrip().upper().startswith("UPDATE"))

    assert uses(0, 10, 30, 59) == 1
    assert uses(60, 75, 119) == 1  # the next minute: once more
    key.refresh_from_db()
    assert key.last_used_at == minute + timedelta(seconds=60)
