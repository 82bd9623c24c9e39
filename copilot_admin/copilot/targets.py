"""A zone's deployments as call targets: what the Azure OpenAI client is given (it knows nothing
of tenants or zones)."""

from django.conf import settings

from copilot_admin.copilot.azure import DeploymentTarget
from copilot_admin.regions.models import AzureDeployment, DataZone
from copilot_admin.regions.selectors import deployments_serving_cached


def deployment_target(deployment: AzureDeployment) -> DeploymentTarget:
    """The tenant-agnostic call target for one deployment, with the configured timeouts and
    connection limit."""
    return DeploymentTarget(
        name=deployment.name,
        endpoint=deployment.endpoint,
        deployment=deployment.deployment,
        api_version=deployment.api_version,
        auth_mode=deployment.auth_mode,
        api_key_env=deployment.api_key_env,
        timeout_seconds=settings.COPILOT_UPSTREAM_TIMEOUT_SECONDS,
        connect_timeout_seconds=settings.COPILOT_UPSTREAM_CONNECT_TIMEOUT_SECONDS,
        max_connections=settings.COPILOT_UPSTREAM_MAX_CONNECTIONS,
    )


def deployments_for_zone(zone: DataZone | int) -> list[DeploymentTarget]:
    """Call targets for `zone` only: never a deployment of another zone. Empty when none is active."""
    zone_id = zone.pk if isinstance(zone, DataZone) else zone
    return [deployment_target(d) for d in deployments_serving_cached(zone_id)]


