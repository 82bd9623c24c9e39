"""Reads of regions: which deployments serve a zone, in the order calls try them."""

from django.conf import settings
from django.db.models import QuerySet

from copilot_admin.copilot.azure import DeploymentTarget
from copilot_admin.regions.models import AzureDeployment, DataZone


def deployment_target(deployment: AzureDeployment) -> DeploymentTarget:
    """The tenant-agnostic call target for one deployment, with the configured timeouts."""
    return DeploymentTarget(
        name=deployment.name,
        endpoint=deployment.endpoint,
        deployment=deployment.deployment,
        api_version=deployment.api_version,
        auth_mode=deployment.auth_mode,
        api_key_env=deployment.api_key_env,
        timeout_seconds=settings.COPILOT_UPSTREAM_TIMEOUT_SECONDS,
        connect_timeout_seconds=settings.COPILOT_UPSTREAM_CONNECT_TIMEOUT_SECONDS,
    )


def deployments_serving(zone: DataZone | int) -> QuerySet[AzureDeployment]:
    """The active deployments of `zone`, in the order a call tries them."""
    return AzureDeployment.objects.filter(zone=zone, active=True).order_by("priority", "name")


def deployments_for_zone(zone: DataZone | int) -> list[DeploymentTarget]:
    """Call targets for `zone` only: never a deployment of another zone. Empty when none is active."""
    return [deployment_target(d) for d in deployments_serving(zone)]


def deployment_list() -> QuerySet[AzureDeployment]:
    """Every deployment, for the operator console."""
    return AzureDeployment.objects.select_related("zone").order_by("zone__code", "priority", "name")
