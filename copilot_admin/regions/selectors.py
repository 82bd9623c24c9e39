"""Reads of regions: which deployments serve a zone, in the order calls try them."""

from django.db.models import QuerySet

from copilot_admin.core.versioned_cache import GLOBAL, Read, cached
from copilot_admin.regions.models import AzureDeployment, DataZone
from tenants.models import Tenant, TenantStatus


def deployments_serving(zone: DataZone | int) -> QuerySet[AzureDeployment]:
    """The active deployments of `zone`, in the order a call tries them."""
    return AzureDeployment.objects.filter(zone=zone, active=True).order_by("priority", "name")


def deactivation_consequences(deployment: AzureDeployment) -> list[str]:
    """What deactivating `deployment` does to its zone, in sentences for the confirmation page:
    the remaining active deployments take its calls, or (when it is the last) every active
    tenant of the zone loses its only deployment."""
    zone = deployment.zone
    others = deployments_serving(zone).exclude(pk=deployment.pk).count()
    tenants = Tenant.objects.filter(zone=zone, status=TenantStatus.ACTIVE).count()
    code = zone.code.upper()
    if others:
        return [
            (
                f"Calls for zone {code} go to the {others} other active deployment{'s' if others != 1 else ''} "
                f"of the zone; no tenant loses the copilot."
            ),
            "You can activate it again from its page.",
        ]
    return [
        (
            f"{tenants} tenant{'s' if tenants != 1 else ''} in zone {code} will lose "
            f"{'their' if tenants != 1 else 'its'} only deployment: copilot calls answer 503 "
            "no_deployment_in_zone until one is active again (calls never go to another zone)."
        ),
        "You can activate it again from its page.",
    ]


def deployments_serving_cached(zone_id: int) -> list[AzureDeployment]:
    """`deployments_serving(zone_id)` through the versioned cache: a change to any deployment
    or zone takes effect on the next call (health, written without a model save, is not read)."""
    return cached(*deployments_serving_read(zone_id), lambda: list(deployments_serving(zone_id)))


def deployments_serving_read(zone_id: int) -> Read:
    """The versioned read (key, scopes) of `deployments_serving_cached`, for a request's read plan."""
    return f"deployments:{zone_id}", (GLOBAL,)


def deployment_list() -> QuerySet[AzureDeployment]:
    """Every deployment, for the operator console."""
    return AzureDeployment.objects.select_related("zone").order_by("zone__code", "priority", "name")
