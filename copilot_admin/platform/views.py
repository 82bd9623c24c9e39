"""The operator console: tenants, plans, data zones, status; Azure deployments."""

from django.contrib import messages
from django.shortcuts import get_object_or_404, redirect
from django.views.generic import FormView, ListView

from copilot_admin.access.base_views import OperatorPageMixin
from copilot_admin.core.errors import ApplicationError
from copilot_admin.core.forms import form_add_service_error
from copilot_admin.platform import services
from copilot_admin.platform.forms import TenantCreateForm, TenantEditForm
from copilot_admin.regions import services as deployment_services
from copilot_admin.regions.forms import DeploymentForm
from copilot_admin.regions.models import AzureDeployment
from copilot_admin.regions.selectors import deployment_list
from tenants.models import Tenant


class TenantListView(OperatorPageMixin, ListView):
    template_name = "platform/tenant_list.html"
    paginate_by = 50

    def get_queryset(self):
        return Tenant.objects.select_related("zone").order_by("name")


class TenantCreateView(OperatorPageMixin, FormView):
    form_class = TenantCreateForm
    template_name = "platform/tenant_form.html"

    def form_valid(self, form):
        try:
            tenant = services.tenant_create(actor=self.request.user, **form.cleaned_data)
        except ApplicationError as error:
            form_add_service_error(form, error)
            return self.form_invalid(form)
        messages.success(self.request, f"The tenant {tenant.name} was created with its system roles.")
        return redirect("platform:tenants")


class TenantEditView(OperatorPageMixin, FormView):
    form_class = TenantEditForm
    template_name = "platform/tenant_form.html"

    def prepare(self) -> None:
        self.object = get_object_or_404(Tenant, pk=self.kwargs["pk"])

    def get_initial(self):
        return {"name": self.object.name, "plan": self.object.plan, "zone": self.object.zone, "status": self.object.status}

    def get_context_data(self, **kwargs):
        return super().get_context_data(object=self.object, **kwargs)

    def form_valid(self, form):
        tenant = services.tenant_update(actor=self.request.user, tenant=self.object, **form.cleaned_data)
        messages.success(self.request, f"The tenant {tenant.name} was saved.")
        return redirect("platform:tenants")


class DeploymentListView(OperatorPageMixin, ListView):
    """Azure deployments per zone with their health (from the calls themselves)."""

    template_name = "platform/deployment_list.html"
    paginate_by = 100

    def get_queryset(self):
        return deployment_list()


class DeploymentCreateView(OperatorPageMixin, FormView):
    form_class = DeploymentForm
    template_name = "platform/deployment_form.html"

    def form_valid(self, form):
        try:
            deployment = deployment_services.deployment_create(actor=self.request.user, **form.cleaned_data)
        except ApplicationError as error:
            form_add_service_error(form, error)
            return self.form_invalid(form)
        messages.success(self.request, f"The deployment {deployment.name} was created.")
        return redirect("platform:deployments")


class DeploymentEditView(OperatorPageMixin, FormView):
    form_class = DeploymentForm
    template_name = "platform/deployment_form.html"

    def prepare(self) -> None:
        self.object = get_object_or_404(AzureDeployment, pk=self.kwargs["pk"])

    def get_initial(self):
        fields = ("zone", "name", "endpoint", "deployment", "api_version", "auth_mode", "api_key_env", "priority", "active")
        return {field: getattr(self.object, field) for field in fields}

    def get_context_data(self, **kwargs):
        return super().get_context_data(object=self.object, **kwargs)

    def form_valid(self, form):
        try:
            deployment = deployment_services.deployment_update(
                actor=self.request.user, azure_deployment=self.object, **form.cleaned_data
            )
        except ApplicationError as error:
            form_add_service_error(form, error)
            return self.form_invalid(form)
        messages.success(self.request, f"The deployment {deployment.name} was saved.")
        return redirect("platform:deployments")
