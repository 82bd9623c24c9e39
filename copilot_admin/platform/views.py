"""The operator console: tenants, plans, data zones, status."""

from django.contrib import messages
from django.shortcuts import get_object_or_404, redirect
from django.views.generic import FormView, ListView

from copilot_admin.access.base_views import OperatorPageMixin
from copilot_admin.access.errors import ApplicationError
from copilot_admin.access.forms import form_add_service_error
from tenants import services
from tenants.forms import TenantCreateForm, TenantEditForm
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

    def setup(self, request, *args, **kwargs):
        super().setup(request, *args, **kwargs)
        self.object = None

    def dispatch(self, request, *args, **kwargs):
        if request.user.is_authenticated and request.user.is_platform_operator:
            self.object = get_object_or_404(Tenant, pk=kwargs["pk"])
        return super().dispatch(request, *args, **kwargs)

    def get_initial(self):
        return {"name": self.object.name, "plan": self.object.plan, "zone": self.object.zone, "status": self.object.status}

    def get_context_data(self, **kwargs):
        return super().get_context_data(object=self.object, **kwargs)

    def form_valid(self, form):
        tenant = services.tenant_update(actor=self.request.user, tenant=self.object, **form.cleaned_data)
        messages.success(self.request, f"The tenant {tenant.name} was saved.")
        return redirect("platform:tenants")
