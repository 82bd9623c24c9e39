"""Operator console: the platform limit policy and terminated copilot access."""

from django.contrib import messages
from django.http import Http404
from django.shortcuts import redirect
from django.views.generic import FormView, ListView

from copilot_admin.access.base_views import OperatorPageMixin
from copilot_admin.core.errors import ApplicationError
from copilot_admin.core.forms import form_add_service_error
from copilot_admin.usage import selectors, services
from copilot_admin.usage.forms import PlatformLimitsForm, ReasonForm
from copilot_admin.usage.models import CaseStatus


class PlatformLimitsView(OperatorPageMixin, FormView):
    form_class = PlatformLimitsForm
    template_name = "platform/limits.html"

    def get_form_kwargs(self):
        return {**super().get_form_kwargs(), "instance": selectors.platform_policy()}

    def form_valid(self, form):
        changes = {name: form.cleaned_data[name] for name in form.Meta.fields}
        try:
            services.platform_limits_update(actor=self.request.user, changes=changes)
        except ApplicationError as error:
            form_add_service_error(form, error)
            return self.form_invalid(form)
        messages.success(self.request, "The platform limit policy was saved.")
        return redirect("platform:limits")


class PlatformAbuseCaseListView(OperatorPageMixin, ListView):
    """Terminated copilot access of every tenant: only operators reinstate it."""

    template_name = "platform/abuse_case_list.html"
    paginate_by = 50

    def get_queryset(self):
        self.status = self.request.GET.get("status", CaseStatus.OPEN)
        return selectors.operator_termination_cases(status=self.status if self.status in CaseStatus.values else None)

    def get_context_data(self, **kwargs):
        return super().get_context_data(status=self.status, statuses=CaseStatus.choices, **kwargs)


class PlatformAbuseCaseReinstateView(OperatorPageMixin, FormView):
    form_class = ReasonForm
    template_name = "platform/abuse_case_reinstate.html"

    def prepare(self) -> None:
        self.case = selectors.operator_termination_cases(status=None).filter(pk=self.kwargs["pk"]).first()
        if self.case is None:
            raise Http404("Not found.")

    def get_context_data(self, **kwargs):
        return super().get_context_data(case=self.case, **kwargs)

    def form_valid(self, form):
        try:
            services.case_reinstate(actor=self.request.user, case=self.case, reason=form.cleaned_data["reason"])
        except ApplicationError as error:
            form_add_service_error(form, error)
            return self.form_invalid(form)
        messages.success(self.request, f"The copilot access of {self.case.membership.user.email} was reinstated.")
        return redirect("platform:abuse_cases")
