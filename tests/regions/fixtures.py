"""Fixtures shared by the regions and copilot tests: deployments of a zone pointing at a simulator."""

from collections.abc import Callable

import pytest

from copilot_admin.regions.models import AzureDeployment, DataZone

TEST_KEY_ENV = "AZURE_OPENAI_KEY_TEST"


def make_deployment(*, zone: str, name: str, endpoint: str, deployment: str | None = None, priority: int = 10,
                    active: bool = True, **fields) -> AzureDeployment:
    return AzureDeployment.objects.create(
        zone=DataZone.objects.get(code=zone), name=name, endpoint=endpoint, deployment=deployment or f"model-{name}",
        api_version="2024-10-21", auth_mode=fields.pop("auth_mode", "api_key"),
        api_key_env=fields.pop("api_key_env", TEST_KEY_ENV), priority=priority, active=active, **fields,
    )


@pytest.fixture
def deployment_factory(db, monkeypatch) -> Callable[..., AzureDeployment]:
    monkeypatch.setenv(TEST_KEY_ENV, "test-key-not-a-secret")
    return make_deployment


@pytest.fixture
def fast_upstream(settings):
    """Short upstream timeouts, so timeout tests take about a second."""
    settings.COPILOT_UPSTREAM_TIMEOUT_SECONDS = 1
    settings.COPILOT_UPSTREAM_CONNECT_TIMEOUT_SECONDS = 1
    settings.COPILOT_CALL_DEADLINE_SECONDS = 5
    return settings
