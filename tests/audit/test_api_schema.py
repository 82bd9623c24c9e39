"""Generated queries against the audit list and export (schemathesis): never a server error,
and every answer is one the schema documents."""

import pytest

from tests.audit.conftest import chain_fill

OPERATIONS = ["/api/v1/tenants/{tenant_slug}/audit/", "/api/v1/tenants/{tenant_slug}/audit/export/"]


@pytest.mark.parametrize("path", OPERATIONS)
def test_generated_queries_get_documented_answers(tenant_a, path):
    schemathesis = pytest.importorskip("schemathesis")
    from django.core import signals
    from django.core.wsgi import get_wsgi_application
    from django.db import close_old_connections
    from hypothesis import HealthCheck, given, settings
    from knox.models import AuthToken
    from schemathesis.checks import (
        content_type_conformance,
        not_a_server_error,
        response_schema_conformance,
        status_code_conformance,
    )

    chain_fill(tenant_a, 60)
    _, token = AuthToken.objects.create(user=tenant_a.members["auditor"].user)
    seen = set()
    # As Django's test client does: the end of a request must not close the test's connection.
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    try:
        operation = schemathesis.openapi.from_wsgi("/api/schema/", get_wsgi_application())[path]["GET"]

        @settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        @given(case=operation.as_strategy())
        def run(case):
            case.path_parameters = {"tenant_slug": "alpha"}
            response = case.call(headers={"Authorization": f"Bearer {token}"})
            seen.add(response.status_code)
            case.validate_response(response, checks=[not_a_server_error, status_code_conformance,
                                                     content_type_conformance, response_schema_conformance])

        run()
    finally:
        signals.request_started.connect(close_old_connections)
        signals.request_finished.connect(close_old_connections)
    assert 200 in seen
