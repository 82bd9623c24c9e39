"""Reading across tenants: platform operators and granted platform auditors read every
tenant's log (read-only, and their reading is recorded); nobody else finds the page."""

from io import StringIO

import pytest
from django.core.management import call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext

from copilot_admin.audit.services import platform_auditor_grant, platform_auditor_revoke
from tests.audit.conftest import chain_fill, entries
from tests.conftest import ROLES
from tests.factories import UserFactory

PAGE = "/audit/"


@pytest.fixture
def platform_auditor(db):
    user = UserFactory(email="compliance@platform.test")
    call_command("audit_platform_auditor", "grant", user.email, stdout=StringIO())
    return user


@pytest.mark.parametrize("who", [*ROLES, "operator", "platform_auditor", "stranger", "anonymous"])
def test_only_operators_and_platform_auditors_find_the_page(client, tenant_a, operator, platform_auditor, who):
    others = {"operator": operator, "platform_auditor": platform_auditor, "anonymous": None,
              "stranger": UserFactory(email="nobody@else.test")}
    user = others[who] if who in others else tenant_a.members[who].user
    if user is not None:
        client.force_login(user)
    expected = {"operator": 200, "platform_auditor": 200, "anonymous": 302}.get(who, 404)
    assert client.get(PAGE).status_code == expected


def test_platform_auditor_reads_every_tenant_and_is_recorded(client, tenant_a, tenant_b, platform_auditor):
    client.force_login(platform_auditor)
    body = client.get(PAGE).content.decode()
    assert "Alpha MSP Client One" in body and "Bravo MSP Client One" in body
    assert entries(None, action="audit.platform_view", actor_id=platform_auditor.pk).count() == 1
    only_b = client.get(PAGE, {"tenant": "bravo"})
    assert {e.tenant_id for e in only_b.context["entries"]} == {tenant_b.tenant.pk}
    seen = entries(tenant_b, action="audit.platform_view").get()
    assert seen.actor_id == platform_auditor.pk and seen.object_id == "bravo"
    assert client.get(PAGE, {"tenant": "no-such-tenant"}).status_code == 404
    entry = entries(tenant_a, action="company.create").first()
    detail = client.get(PAGE, {"entry": entry.pk}).content.decode()
    assert entry.hash in detail and "Alpha MSP Client One" in detail


def test_grant_is_recorded_and_revocation_closes_the_page(client, operator, platform_auditor):
    grant = entries(None, action="audit.platform_auditor_grant").get()
    assert grant.object_id == str(platform_auditor.pk) and grant.actor_type == "system"
    platform_auditor_revoke(actor=operator, user=platform_auditor)
    client.force_login(platform_auditor)
    assert client.get(PAGE).status_code == 404
    assert entries(None, action="audit.platform_auditor_revoke").get().actor_id == operator.pk


def test_only_operators_grant(tenant_a):
    from copilot_admin.core.errors import PermissionRefused

    with pytest.raises(PermissionRefused):
        platform_auditor_grant(actor=tenant_a.members["admin"].user, user=tenant_a.members["auditor"].user)


def test_page_query_count_is_independent_of_entries(client, tenant_a, tenant_b, platform_auditor):
    client.force_login(platform_auditor)

    def count():
        with CaptureQueriesContext(connection) as queries:
            assert client.get(PAGE).status_code == 200
        return len(queries)

    few = count()
    chain_fill(tenant_a, 100)
    chain_fill(tenant_b, 100)
    assert count() == few
