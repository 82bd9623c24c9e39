"""The correlation id of an audit entry is always the server's: a client's `X-Request-ID`
cannot make its action share another's id. The client's id is kept apart, sanitized and
cut short, as `metadata.client_request_id`."""

import re

from django.urls import reverse

from tests.audit.conftest import entries
from tests.conftest import api_client_for
from tests.copilot.conftest import api_key, sim, simulator_url  # noqa: F401
from tests.factories import add_member
from tests.regions.fixtures import deployment_factory  # noqa: F401

SERVER_ID = re.compile(r"^[0-9a-f]{32}$")


def test_two_requests_with_the_same_x_request_id_get_different_correlation_ids(tenant_a):
    api = api_client_for(tenant_a.members["admin"].user)
    url = reverse("api:companies-list", kwargs={"tenant_slug": "alpha"})
    created = [api.post(url, {"name": name}, format="json", HTTP_X_REQUEST_ID="shared-id").json()["id"]
               for name in ("First Co", "Second Co")]
    first, second = (entries(tenant_a, action="company.create", object_id=str(pk)).get() for pk in created)
    assert first.correlation_id != second.correlation_id
    assert SERVER_ID.match(first.correlation_id) and SERVER_ID.match(second.correlation_id)
    assert first.metadata["client_request_id"] == second.metadata["client_request_id"] == "shared-id"


def test_a_client_cannot_take_over_an_existing_correlation_id(tenant_a):
    admin_api = api_client_for(tenant_a.members["admin"].user)
    url = reverse("api:companies-list", kwargs={"tenant_slug": "alpha"})
    pk = admin_api.post(url, {"name": "Victim Co"}, format="json").json()["id"]
    victim = entries(tenant_a, action="company.create", object_id=str(pk)).get()
    pk = admin_api.post(url, {"name": "Forger Co"}, format="json", HTTP_X_REQUEST_ID=victim.correlation_id).json()["id"]
    forged = entries(tenant_a, action="company.create", object_id=str(pk)).get()
    assert forged.correlation_id != victim.correlation_id
    assert entries(tenant_a, correlation_id=victim.correlation_id).count() == 1


def test_the_client_id_is_sanitized_and_length_limited(tenant_a):
    api = api_client_for(tenant_a.members["admin"].user)
    url = reverse("api:companies-list", kwargs={"tenant_slug": "alpha"})
    hostile = "=HYPERLINK(\"http://evil\") <script>" + "x" * 200
    pk = api.post(url, {"name": "Label Co"}, format="json", HTTP_X_REQUEST_ID=hostile).json()["id"]
    entry = entries(tenant_a, action="company.create", object_id=str(pk)).get()
    label = entry.metadata["client_request_id"]
    assert re.fullmatch(r"[A-Za-z0-9._:-]{1,64}", label) and label.startswith("HYPERLINKhttp:evilscript")
    pk = api.post(url, {"name": "No Label Co"}, format="json").json()["id"]
    assert "client_request_id" not in entries(tenant_a, action="company.create", object_id=str(pk)).get().metadata


def test_events_recorded_from_the_request_keep_both_ids(client, tenant_a, operator):
    """Event entries (a refusal by the security role; an operator's API access) as well as changes."""
    client.force_login(tenant_a.members["tech"].user)
    client.get(reverse("directory:users", kwargs={"tenant_slug": "alpha"}), HTTP_X_REQUEST_ID="page-id")
    denied = entries(tenant_a, action="access.denied").get()
    assert SERVER_ID.match(denied.correlation_id) and denied.metadata["client_request_id"] == "page-id"

    add_member(tenant_a.tenant, "Tenant Administrator", email=operator.email)
    api_client_for(operator).get(reverse("api:users-list", kwargs={"tenant_slug": "alpha"}),
                                 HTTP_X_REQUEST_ID="page-id")
    access = entries(tenant_a, action="operator.tenant_access").get()
    assert access.correlation_id != denied.correlation_id and access.metadata["client_request_id"] == "page-id"


def test_copilot_calls_keep_both_ids(tenant_a, deployment_factory, simulator_url, sim):  # noqa: F811
    deployment_factory(zone="us", name="us-primary", endpoint=simulator_url, priority=1)
    api = api_client_for(tenant_a.members["tech"].user)
    body = {"company": str(tenant_a.companies[0].pk), "contact": {"first_name": "Ana"},
            "issue": {"summary": "Printer offline", "description": "", "conversation": []}}
    url = reverse("api:copilot-summarize", kwargs={"tenant_slug": "alpha"})
    assert [api.post(url, body, format="json", HTTP_X_REQUEST_ID="psa-42").status_code for _ in range(2)] == [200, 200]
    first, second = entries(tenant_a, action="copilot.call")
    assert first.correlation_id != second.correlation_id and SERVER_ID.match(first.correlation_id)
    assert first.metadata["client_request_id"] == second.metadata["client_request_id"] == "psa-42"


def test_a_requests_scope_ends_with_it(client, tenant_a):
    """What one request set (address, ids) never reaches the next unit of work on the thread."""
    from copilot_admin.core.context import AuditScope, current_scope

    client.force_login(tenant_a.members["admin"].user)
    client.get(reverse("directory:users", kwargs={"tenant_slug": "alpha"}), REMOTE_ADDR="192.0.2.77",
               HTTP_X_REQUEST_ID="leaky")
    assert current_scope() == AuditScope()
