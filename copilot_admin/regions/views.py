"""Tenant page: the tenant's data zone and which deployments serve it."""

from django.views.generic import TemplateView

from copilot_admin.access.base_views import TenantPageMixin
from copilot_admin.access.permissions import Perm
from copilot_admin.regions.selectors import deployments_serving


class ZoneView(TenantPageMixin, TemplateView):
    """Where this tenant's copilot calls are processed. No endpoints' secrets, no key names."""

    permission_required = Perm.REGION
    template_name = "regions/zone.html"

    def get_context_data(self, **kwargs):
        deployments = deployments_serving(self.tenant.zone_id).only(
            "name", "priority", "last_success_at", "last_failure_at", "last_latency_ms", "latency_ewma_ms"
        )
        return super().get_context_data(zone=self.tenant.zone, deployments=list(deployments), **kwargs)
