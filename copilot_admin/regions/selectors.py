"""Reads of regions: which deployments serve a zone, in the order calls try them."""

from django.db.models import QuerySet

from copilot_admin.core.versioned_cache import GLOBAL, cached
from copilot_admin.regions.models import AzureDeployment, DataZone


def deployments_serving(zone: DataZone | int) -> QuerySet[AzureDeployment]:
    """The active deployments of `zone`, in the order a call tries them."""
    return AzureDeployment.objects.filter(zone=zone, active=True).order_by("priority", "name")




def deployments_serving_cached(zone_id: int) -> list[AzureDeployment]:
    """`deployments_serving(zone_id)` through the versioned cache: a change to any deployment
    or zone takes effect on the next call (health, written without a model save, is not read)."""
    return cached(f"deployments:{zone_id}", (GLOBAL,), lambda: list(deployments_serving(zone_id)))


def deployment_list() -> QuerySet[AzureDeployment]:
    """Every deployment, for the operator console."""
    return AzureDeployment.objects.select_related("zone").order_by("zone__code", "priority", "name")
