"""The operator console: tenants, plans, data zones, status; Azure deployments."""

from django.contrib import messages
from django.db import transaction
from django.http import Http404
from django.shortcuts import get_object_or_404, redirect
from django.urls import reverse
from django.views import View
from django.views.generic import FormView, ListView, TemplateView

from copilot_admin.access.base_views import OperatorPageMixin
from copilot_admin.access.setup_checks import setup_checklist
from copilot_admin.audit.hooks import audit_operator_tenant_access
from copilot_admin.core.errors import ApplicationError
from copilot_admin.core.forms import form_add_service_error
from copilot_admin.directory import services as directory_services
from copilot_admin.directory.selectors import tenant_administrators
from copilot_admin.platform import services
from copilot_admin.platform.forms import AdminInviteForm, TenantCreateForm, TenantEditForm
from copilot_admin.regions import services as deployment_services
from copilot_admin.regions.forms import DeploymentForm
from copilot_admin.regions.models import AzureDeployment
from copilot_admin.regions.selectors import deactivation_consequences, deployment_list
from tenants.models import Membership, Tenant, TenantStatus


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
        messages.success(
            self.request,
            f"The tenant {tenant.name} was created with its system roles; "
            f"{form.cleaned_data['admin_email']} is invited as its administrator.",
        )
        return redirect("platform:tenant_overview", pk=tenant.pk)


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
        changes = dict(form.cleaned_data)
        # Suspending cannot happen by accident: the rest is saved, the suspension waits for its own page.
        suspend_asked = self.object.status != TenantStatus.SUSPENDED and changes.get("status") == TenantStatus.SUSPENDED
        if suspend_asked:
            changes.pop("status")
        tenant = services.tenant_update(actor=self.request.user, tenant=self.object, **changes)
        if suspend_asked:
            messages.info(self.request, f"The tenant {tenant.name} was saved; confirm the suspension below.")
            return redirect("platform:tenant_suspend", pk=tenant.pk)
        messages.success(self.request, f"The tenant {tenant.name} was saved.")
        return redirect("platform:tenants")


class TenantSuspendView(OperatorPageMixin, TemplateView):
    """Confirm suspending a tenant (GET: what follows; POST: do it). Works without JavaScript."""

    template_name = "confirm.html"

    def prepare(self) -> None:
        self.object = get_object_or_404(Tenant, pk=self.kwargs["pk"], status=TenantStatus.ACTIVE)

    def get_context_data(self, **kwargs):
        tenant = self.object
        users = Membership.objects.for_tenant(tenant).granting_access().count()
        return super().get_context_data(
            title=f"Suspend the tenant {tenant.name}?",
            consequences=[
                (
                    f"{users} user{'s' if users != 1 else ''} lose{'' if users != 1 else 's'} access to "
                    f"{tenant.name} at once: its pages, the API and the copilot."
                ),
                "Their login sessions and API tokens are ended.",
                "Its data, usage and audit history stay; you can set it active again from its page.",
            ],
            confirm_label="Suspend",
            cancel_url=reverse("platform:tenant_edit", kwargs={"pk": tenant.pk}),
            **kwargs,
        )

    def post(self, request, *args, **kwargs):
        tenant = services.tenant_update(actor=request.user, tenant=self.object, status=TenantStatus.SUSPENDED)
        messages.success(request, f"The tenant {tenant.name} was suspended.")
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
        changes = dict(form.cleaned_data)
        # Deactivating cannot happen by accident: the rest is saved, the deactivation waits for its own page.
        deactivation_asked = self.object.active and not changes.get("active", True)
        if deactivation_asked:
            changes.pop("active")
        try:
            deployment = deployment_services.deployment_update(
                actor=self.request.user, azure_deployment=self.object, **changes
            )
        except ApplicationError as error:
            form_add_service_error(form, error)
            return self.form_invalid(form)
        if deactivation_asked:
            messages.info(self.request, f"The deployment {deployment.name} was saved; confirm the deactivation below.")
            return redirect("platform:deployment_deactivate", pk=deployment.pk)
        messages.success(self.request, f"The deployment {deployment.name} was saved.")
        return redirect("platform:deployments")


class DeploymentDeactivateView(OperatorPageMixin, TemplateView):
    """Confirm deactivating a deployment (GET: what follows for its zone's tenants; POST: do it)."""

    template_name = "confirm.html"

    def prepare(self) -> None:
        self.object = get_object_or_404(AzureDeployment.objects.select_related("zone"), pk=self.kwargs["pk"], active=True)

    def get_context_data(self, **kwargs):
        return super().get_context_data(
            title=f"Deactivate the deployment {self.object.name}?",
            consequences=deactivation_consequences(self.object),
            confirm_label="Deactivate",
            cancel_url=reverse("platform:deployment_edit", kwargs={"pk": self.object.pk}),
            **kwargs,
        )

    def post(self, request, *args, **kwargs):
        deployment = deployment_services.deployment_update(actor=request.user, azure_deployment=self.object, active=False)
        messages.success(request, f"The deployment {deployment.name} was deactivated.")
        return redirect("platform:deployments")


class TenantOverviewView(OperatorPageMixin, TemplateView):
    """A tenant seen from the console, read-only: its facts, the setup checklist, and its
    administrators' invitations (invite another, re-send a pending one). The operator is not a
    member of the tenant, so `/t/<slug>/` sends it here; opening it is recorded in the tenant's log."""

    template_name = "platform/tenant_overview.html"

    def prepare(self) -> None:
        self.object = get_object_or_404(Tenant.objects.select_related("zone"), pk=self.kwargs["pk"])

    def get(self, request, *args, **kwargs):
        with transaction.atomic():
            audit_operator_tenant_access(request=request, tenant=self.object)
        return super().get(request, *args, **kwargs)

    def get_context_data(self, **kwargs):
        return super().get_context_data(**tenant_overview_context(tenant=self.object), **kwargs)


def tenant_overview_context(*, tenant: Tenant, invite_form: AdminInviteForm | None = None) -> dict:
    return {
        "object": tenant,
        "checklist": setup_checklist(tenant=tenant),
        "administrators": tenant_administrators(tenant=tenant),
        "invite_form": invite_form or AdminInviteForm(),
    }


class TenantAdminInviteView(OperatorPageMixin, FormView):
    """Invite an administrator to a tenant (POST from the tenant's console page)."""

    form_class = AdminInviteForm
    template_name = "platform/tenant_overview.html"
    http_method_names = ["post"]

    def prepare(self) -> None:
        self.object = get_object_or_404(Tenant.objects.select_related("zone"), pk=self.kwargs["pk"])

    def form_valid(self, form):
        try:
            membership = directory_services.tenant_admin_invite(
                actor=self.request.user, tenant=self.object, email=form.cleaned_data["email"]
            )
        except ApplicationError as error:
            form_add_service_error(form, error)
            return self.form_invalid(form)
        messages.success(self.request, f"{membership.user.email} was invited as administrator of {self.object.name}.")
        return redirect("platform:tenant_overview", pk=self.object.pk)

    def form_invalid(self, form):
        context = tenant_overview_context(tenant=self.object, invite_form=form)
        return self.render_to_response(context, status=400)


class TenantInvitationResendView(OperatorPageMixin, View):
    """Re-send a pending administrator invitation of a tenant (POST)."""

    http_method_names = ["post"]

    def post(self, request, pk: int, membership_pk: int):
        tenant = get_object_or_404(Tenant, pk=pk)
        membership = Membership.objects.for_tenant(tenant).pending().filter(pk=membership_pk).first()
        if membership is None:
            raise Http404("Not found.")
        directory_services.tenant_admin_invitation_resend(actor=request.user, membership=membership)
        messages.success(request, f"The invitation to {membership.user.email} was sent again.")
        return redirect("platform:tenant_overview", pk=tenant.pk)
