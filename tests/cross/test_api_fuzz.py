"""schemathesis over the whole OpenAPI schema, as a tenant's administrator, technician and
auditor, as the platform operator and with an integration key (both scopes): generated requests (valid by the schema, and invalid
ones) never get a server error, and every answer is one the schema documents (status, content
type, headers, body); invalid input is refused.

Checks: not_a_server_error, status_code_conformance, content_type_conformance,
response_headers_conformance, response_schema_conformance, negative_data_rejection (the API
refuses what the schema says it refuses) and ignored_auth. Not positive_data_acceptance: the
schema cannot say that a role id must name an existing role or that `since` comes before
`until`, so schema-valid input is rightly refused with 400 there.

Every operation starts from the same seeded world (a savepoint rolled back after it), so an
operation that deactivates the acting user or changes its role cannot spoil the next one. Only
`DELETE /api/v1/auth/token/` is left out: it revokes the run's own token. Path parameters are
the seeded tenant and one of its objects for most examples, so that requests get past the
404, and generated (malformed too) for the others. Examples are bounded and derandomized: the
same requests every run.
"""

import pytest
from django.db import transaction
from django.urls import reverse

from tests.copilot.conftest import sim, simulator_url  # noqa: F401
from tests.cross.routes import object_pk
from tests.regions.fixtures import deployment_factory  # noqa: F401

# "psa-key": a PSA server's integration key of the tenant, with both scopes (identity/).
ACTORS = ["admin", "tech", "auditor", "operator", "psa-key"]
EXCLUDED = {("DELETE", "/api/v1/auth/token/")}
MAX_EXAMPLES = 15


@pytest.fixture
def fuzz_world(tenant_a, tenant_b, operator, deployment_factory, simulator_url, sim):  # noqa: F811
    from copilot_admin.access.models import SecurityRole

    deployment = deployment_factory(zone="us", name="us-primary", endpoint=simulator_url, deployment="dep-us", priority=1)
    role = SecurityRole.objects.for_tenant(tenant_a.tenant).create(
        tenant=tenant_a.tenant, name="Night shift", user_type="internal", permissions=["copilot.summarize"]
    )
    ids = {
        "/users/": tenant_a.members["comanaged"].pk,
        "/roles/": role.pk,
        "/companies/": tenant_a.companies[1].pk,
        "/abuse-cases/": object_pk("abuse_case", tenant_a),
        "/webhooks/": object_pk("webhook", tenant_a),
        "/access-reviews/": object_pk("access_review", tenant_a),
        "/integration-keys/": object_pk("integration_key", tenant_a),
        "/platform/tenants/": tenant_b.tenant.pk,
        "/platform/deployments/": deployment.pk,
    }
    return {"tenant": tenant_a, "ids": ids}


def _object_id(path: str, ids: dict) -> int | None:
    for prefix, pk in ids.items():
        if prefix in path:
            return pk
    return None


def _checks():
    from schemathesis.checks import (
        content_type_conformance,
        ignored_auth,
        negative_data_rejection,
        not_a_server_error,
        response_headers_conformance,
        response_schema_conformance,
        status_code_conformance,
    )

    return [not_a_server_error, status_code_conformance, content_type_conformance, response_headers_conformance,
            response_schema_conformance, negative_data_rejection, ignored_auth]


def _strategy(operation, world):
    from hypothesis import strategies as st
    from schemathesis import GenerationMode

    fixed = {}
    if "{tenant_slug}" in operation.path:
        fixed["tenant_slug"] = world["tenant"].tenant.slug
    object_id = _object_id(operation.path, world["ids"])
    if "{id}" in operation.path and object_id is not None:
        fixed_object = {**fixed, "id": object_id}
    else:
        fixed_object = fixed
    strategies = [
        operation.as_strategy(GenerationMode.POSITIVE, path_parameters=fixed_object),
        operation.as_strategy(GenerationMode.NEGATIVE, path_parameters=fixed_object),
        operation.as_strategy(GenerationMode.POSITIVE, path_parameters=fixed),
        operation.as_strategy(GenerationMode.NEGATIVE),
    ]
    return st.one_of(strategies)


@pytest.fixture
def no_key_rate(settings):
    """The key's own rate (tests/identity) would answer 429 on a fast machine, mid-run."""
    settings.INTEGRATION_KEY_REQUESTS_PER_MINUTE = 0


@pytest.mark.parametrize("actor", ACTORS)
def test_whole_schema_gets_documented_answers(fuzz_world, operator, no_key_rate, actor):
    import schemathesis
    from django.core import signals
    from django.core.wsgi import get_wsgi_application
    from django.db import close_old_connections
    from hypothesis import HealthCheck, given, settings
    from knox.models import AuthToken

    from copilot_admin.identity.services import integration_key_create

    if actor == "psa-key":
        _, token = integration_key_create(
            actor=fuzz_world["tenant"].members["admin"], name="PSA", scopes=["copilot", "read"]
        )
    else:
        user = operator if actor == "operator" else fuzz_world["tenant"].members[actor].user
        _, token = AuthToken.objects.create(user=user)
    headers = {"Authorization": f"Bearer {token}"}
    failures: dict[str, str] = {}
    exercised = 0
    # As Django's test client does: the end of a request must not close the test's connection.
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    try:
        schema = schemathesis.openapi.from_wsgi(reverse("schema"), get_wsgi_application())
        for result in schema.get_all_operations():
            operation = result.ok()
            if (operation.method.upper(), operation.path) in EXCLUDED:
                continue

            @settings(max_examples=MAX_EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck),
                      database=None, derandomize=True, report_multiple_bugs=False)
            @given(case=_strategy(operation, fuzz_world))
            def run(case):
                response = case.call(headers=headers)
                case.validate_response(response, checks=_checks(), headers=headers)

            try:
                with transaction.atomic():
                    try:
                        run()
                    finally:
                        transaction.set_rollback(True)
            except (Exception, BaseExceptionGroup) as exc:  # noqa: BLE001 - collected per operation, reported together
                failures[operation.label] = str(exc)[:3000]
            exercised += 1
    finally:
        signals.request_started.connect(close_old_connections)
        signals.request_finished.connect(close_old_connections)
    assert exercised >= 40
    assert not failures, "\n\n".join(f"== {label}\n{text}" for label, text in failures.items())
