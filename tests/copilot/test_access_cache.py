"""The cached, versioned access decision (core/versioned_cache.py; issue 10).

A copilot call through the API reads its token, membership, role, tenant switches, company
scope, access state, limits and the zone's deployments from the cache. Each test here warms
the cache with a successful call, changes one of those rows the way the product does, and
sees the very next call decided on the new state: a change takes effect on the next call,
for every kind of row the decision reads. Runs on real connections in autocommit
(`transaction=True`), the way requests run, so values are cached as in production.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.cache import cache, caches
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone
from knox.models import AuthToken

from copilot_admin.copilot.features import get_feature
from copilot_admin.core.versioned_cache import cached
from copilot_admin.directory import services as directory_services
from copilot_admin.regions.models import AzureDeployment
from copilot_admin.usage.models import AccessStatus, CopilotAccess, PlatformLimitPolicy, TenantLimitPolicy
from tests.conftest import api_client_for, require_redis
from tests.copilot.test_call_faults import ticket, us_deployment  # noqa: F401  (the same ticket and deployment)
from tests.factories import add_member, role_named
from tests.regions.fixtures import deployment_factory  # noqa: F401

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)

SUMMARIZE = get_feature("summarize").permission


def _suspend(world, member):
    CopilotAccess.objects.for_tenant(world.tenant).create(
        tenant=world.tenant, membership=member, status=AccessStatus.SUSPENDED,
        suspended_until=timezone.now() + timedelta(hours=1), reason="test",
    )


def _revoke_grant(world, member):
    role = member.role
    role.permissions = [code for code in role.permissions if code != SUMMARIZE]
    role.save()


def _unbind_company(world, member):
    member.companies.remove(world.companies[0])


def _switch_feature_off(world, member):
    tenant = world.tenant
    tenant.feature_switches = {**tenant.feature_switches, "summarize": False}
    tenant.save()


def _suspend_tenant(world, member):
    tenant = world.tenant
    tenant.status = "suspended"
    tenant.save()


def _deactivate_membership(world, member):
    member.is_active = False
    member.access_revoked_at = timezone.now()
    member.save()


def _deactivate_user(world, member):
    member.user.is_active = False
    member.user.save()


def _revoke_tokens(world, member):
    AuthToken.objects.filter(user=member.user).delete()


def _deactivate_company(world, member):
    # Through the service, as the page and the API do: a deactivated company is out of every
    # member's copilot scope, internal users' too.
    directory_services.company_update(actor=world.members["admin"], company=world.companies[0], is_active=False)


def _deactivate_in_bulk(world, member):
    # A bulk action bumps the tenant's version like a single change: the member's own
    # deactivation among others takes effect on its next call.
    extra = add_member(world.tenant, "Technician", email="peer@alpha.test")
    directory_services.membership_bulk_apply(
        actor=world.members["admin"], membership_ids=[member.pk, extra.pk], action="deactivate")


def _role_changed_in_bulk(world, member):
    directory_services.membership_bulk_apply(
        actor=world.members["admin"], membership_ids=[member.pk], action="role",
        role=role_named(world.tenant, "Compliance Auditor"))


def _deactivate_deployment(world, member):
    deployment = AzureDeployment.objects.get(name="us-primary")
    deployment.active = False
    deployment.save()


def _tenant_limit(world, member):
    TenantLimitPolicy.objects.for_tenant(world.tenant).create(tenant=world.tenant, user_requests_per_day=1)


def _platform_limit(world, member):
    policy = PlatformLimitPolicy.objects.filter(pk=PlatformLimitPolicy.SINGLETON_PK).first() or PlatformLimitPolicy(
        pk=PlatformLimitPolicy.SINGLETON_PK
    )
    policy.user_requests_per_day = 1
    policy.save()


CHANGES = [
    ("tech", _suspend, 403, "access_suspended"),
    ("tech", _revoke_grant, 403, "permission_denied"),
    ("comanaged", _unbind_company, 403, "company_out_of_scope"),
    ("tech", _switch_feature_off, 403, "feature_disabled"),
    ("tech", _suspend_tenant, 403, "tenant_suspended"),
    ("tech", _deactivate_membership, 404, "not_found"),
    ("tech", _deactivate_user, 401, None),
    ("tech", _revoke_tokens, 401, None),
    ("tech", _deactivate_company, 400, "company_inactive"),
    ("comanaged", _deactivate_company, 400, "company_inactive"),
    ("tech", _deactivate_in_bulk, 401, None),  # its tokens end with its last membership
    ("tech", _role_changed_in_bulk, 403, "permission_denied"),
    ("tech", _deactivate_deployment, 503, "no_deployment_in_zone"),
    ("tech", _tenant_limit, 429, "rate_limited"),
    ("tech", _platform_limit, 429, "rate_limited"),
]



@pytest.mark.parametrize(("role", "change", "status", "code"), CHANGES,
                         ids=[f"{c[0]}-{c[1].__name__[1:]}" for c in CHANGES])
def test_a_change_to_what_the_decision_reads_takes_effect_on_the_next_call(
    tenant_a, us_deployment, sim, role, change, status, code,
):
    member = tenant_a.members[role]
    client = api_client_for(member.user)
    url = reverse("api:copilot-summarize", kwargs={"tenant_slug": tenant_a.tenant.slug})
    for _ in range(2):  # the second call is answered from the cache
        response = client.post(url, ticket(tenant_a.companies[0]), format="json")
        assert response.status_code == 200, response.content[:300]

    change(tenant_a, member)

    response = client.post(url, ticket(tenant_a.companies[0]), format="json")
    assert response.status_code == status, response.content[:300]
    if code is not None:
        assert response.json()["error"]["code"] == code


def test_the_cache_serves_the_decision_without_reading_the_database(tenant_a, us_deployment, sim, settings,
                                                                    django_assert_max_num_queries):
    # Measured in the production configuration: without Redis the limit counters are database
    # rows and the local memory cache's get_many is one get per key (no round trips to count).
    require_redis()
    settings.AUDIT_SEAL_ON_COMMIT = False  # production seals in the beat task, off the call's path
    client = api_client_for(tenant_a.members["tech"].user)
    url = reverse("api:copilot-summarize", kwargs={"tenant_slug": tenant_a.tenant.slug})
    assert client.post(url, ticket(tenant_a.companies[0]), format="json").status_code == 200
    # Warm: no SELECT at all; the statements are the call's writes (tests/copilot/test_bookkeeping.py).
    with django_assert_max_num_queries(20) as captured:
        assert client.post(url, ticket(tenant_a.companies[0]), format="json").status_code == 200
    statements = [q["sql"].split()[0].upper() for q in captured.captured_queries]

    # The audit entry, the usage record and its roll-ups (one statement on PostgreSQL,
    # core/inserts.OneStatement; elsewhere two INSERTs and two UPDATEs); the deployment's health.
    bookkeeping = ["WITH"] if connection.vendor == "postgresql" else ["INSERT", "INSERT", "UPDATE", "UPDATE"]
    assert [s for s in statements if s not in ("BEGIN", "COMMIT")] == [*bookkeeping, "UPDATE"]


def test_a_cache_outage_falls_back_to_the_database(tenant_a, us_deployment, sim, monkeypatch):
    client = api_client_for(tenant_a.members["tech"].user)
    url = reverse("api:copilot-summarize", kwargs={"tenant_slug": tenant_a.tenant.slug})
    assert client.post(url, ticket(tenant_a.companies[0]), format="json").status_code == 200

    def down(*args, **kwargs):
        raise ConnectionError("cache down")

    monkeypatch.setattr(cache, "get_many", down)
    monkeypatch.setattr(cache, "get", down)
    assert client.post(url, ticket(tenant_a.companies[0]), format="json").status_code == 200
    _suspend(tenant_a, tenant_a.members["tech"])
    response = client.post(url, ticket(tenant_a.companies[0]), format="json")
    assert response.status_code == 403 and response.json()["error"]["code"] == "access_suspended"


def test_a_value_read_inside_a_transaction_is_not_cached(tenant_a, settings):
    loads = []

    def load():
        loads.append(1)
        return "value"

    with transaction.atomic():
        assert cached("probe", ("tenant:alpha",), load) == "value"
    assert cached("probe", ("tenant:alpha",), load) == "value"  # read again: not stored from the block
    assert cached("probe", ("tenant:alpha",), load) == "value"  # stored by the autocommit read
    assert len(loads) == 2


def test_a_warm_call_reads_its_access_chain_in_one_cache_round_trip(tenant_a, us_deployment, sim,
                                                                   access_cache_trips):
    # Measured in the production configuration: without Redis the limit counters are database
    # rows and the local memory cache's get_many is one get per key (no round trips to count).
    require_redis()
    # The token's row, membership, access state, company scope, limits and the zone's deployments
    # with their versions: one MGET (core/versioned_cache.py `planned_reads`; it was 7 round
    # trips, a GET and six MGETs).
    trips = access_cache_trips
    client = api_client_for(tenant_a.members["tech"].user)
    url = reverse("api:copilot-summarize", kwargs={"tenant_slug": tenant_a.tenant.slug})
    for _ in range(2):  # warm the cache (and what the process learns of the caller)
        assert client.post(url, ticket(tenant_a.companies[0]), format="json").status_code == 200
    trips.clear()
    assert client.post(url, ticket(tenant_a.companies[0]), format="json").status_code == 200
    assert trips == ["get_many"], trips


def test_planned_reads_answer_from_one_snapshot_and_a_bump_drops_it(tenant_a, monkeypatch):
    from copilot_admin.core.versioned_cache import planned_reads, planned_reads_end, planned_reads_fetch, scopes_bump

    values = {"probe": "old"}
    loads = []

    def load():
        loads.append(1)
        return values["probe"]

    read = ("probe", ("tenant:alpha",))
    assert cached(*read, load) == "old"  # stored
    rounds = []
    backend = type(caches["default"])
    original = backend.get_many
    monkeypatch.setattr(backend, "get_many", lambda self, keys, **kw: rounds.append(list(keys)) or original(self, keys, **kw))
    with planned_reads(lambda user_id: [read]):
        planned_reads_fetch(1)
        assert len(rounds) == 1
        assert cached(*read, load) == "old" and len(loads) == 1  # from the snapshot, no round trip
        assert cached("other", ("tenant:alpha",), lambda: "x") == "x"  # not planned: its own round trip
        assert len(rounds) == 2
        values["probe"] = "new"
        scopes_bump("tenant:alpha")  # a write of the request: its snapshot is dropped
        assert cached(*read, load) == "new" and len(loads) == 2
        assert len(rounds) == 3
        planned_reads_fetch(1)
        planned_reads_end()  # the chain is done: reads go to the cache again
        assert cached(*read, load) == "new"
        assert len(rounds) == 5
    planned_reads_fetch(1)  # no plan outside the block: nothing read
    assert len(rounds) == 5


def test_a_wrong_hint_of_the_plan_costs_round_trips_not_a_wrong_answer(tenant_a, us_deployment, sim):
    from copilot_admin.copilot import services

    member = tenant_a.members["tech"]
    client = api_client_for(member.user)
    url = reverse("api:copilot-summarize", kwargs={"tenant_slug": tenant_a.tenant.slug})
    assert client.post(url, ticket(tenant_a.companies[0]), format="json").status_code == 200
    other = tenant_a.members["comanaged"]
    # The plan names another member's access state and company scope, and another zone.
    services._chain_hints[(tenant_a.tenant.slug, member.user_id)] = (other.pk, tenant_a.tenant.zone_id + 1000)
    _suspend(tenant_a, member)
    response = client.post(url, ticket(tenant_a.companies[0]), format="json")
    assert response.status_code == 403 and response.json()["error"]["code"] == "access_suspended"
    assert services._chain_hints[(tenant_a.tenant.slug, member.user_id)] == (member.pk, tenant_a.tenant.zone_id)



def test_a_warm_integration_key_call_reads_its_key_then_its_access_chain_in_one_round_trip(
    tenant_a, us_deployment, sim, access_cache_trips, monkeypatch, settings,
):
    """A PSA server's call with an integration key: the key's row (one MGET), then, once the
    acting member is known (the process's hint, checked), the whole access chain (one MGET), as
    an API token's owner gets it; no database read.
    The key's tenant is kept by the process, its last use claimed once a minute per process and
    its rate counted in one Redis round trip (not through the versioned keys counted here). It
    was 9 cache calls (a GET, six MGETs, an ADD and an INCR: EXISTS and INCRBY) and a SELECT."""
    require_redis()
    settings.AUDIT_SEAL_ON_COMMIT = False  # production seals in the beat task, off the call's path
    from django.core.cache import caches

    from tests.identity.test_integration_keys import key_client, make_key
    from tests.identity.test_integration_keys import ticket as key_ticket

    every_call = []
    backend = type(caches["default"])
    for name in ("get", "get_many", "set", "set_many", "add", "incr"):
        original = getattr(backend, name)

        def wrapper(self, *args, _original=original, _name=name, **kwargs):
            every_call.append(_name)
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(backend, name, wrapper)
    _, secret = make_key(tenant_a)
    client = key_client(secret)
    url = reverse("api:copilot-summarize", kwargs={"tenant_slug": tenant_a.tenant.slug})
    body = key_ticket(tenant_a.companies[0], acting_user=tenant_a.members["tech"].user.email)
    for _ in range(2):  # warm the cache (and what the process learns of the key)
        assert client.post(url, body, format="json").status_code == 200
    access_cache_trips.clear()
    every_call.clear()
    with CaptureQueriesContext(connection) as queries:
        assert client.post(url, body, format="json").status_code == 200
    assert access_cache_trips == ["get_many", "get_many"], access_cache_trips
    assert every_call == ["get_many", "get_many"], every_call
    # No read of the database either: the acting member by e-mail is the process's hint, checked
    # against the member's versioned row (tests/identity/test_integration_keys.py).
    assert not [q["sql"] for q in queries.captured_queries if q["sql"].lstrip().upper().startswith("SELECT")]
