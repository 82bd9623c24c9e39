"""Operator console: tenants' claims on e-mail domains for single sign-on (approve or reject)."""

from django.contrib import messages
from django.http import Http404
from django.shortcuts import redirect
from django.views import View
from django.views.generic import ListView

from copilot_admin.access.base_views import OperatorPageMixin
from copilot_admin.core.errors import ApplicationError
from copilot_admin.identity.models import SsoDomainStatus
from copilot_admin.identity.sso_selectors import sso_domain_claims
from copilot_admin.identity.sso_services import sso_domain_decide


class SsoDomainListView(OperatorPageMixin, ListView):
    """Every tenant's domain claims, pending first: a domain signs in with SSO only once approved."""

    template_name = "platform/sso_domain_list.html"
    paginate_by = 50

    def get_queryset(self):
        self.status = self.request.GET.get("status", SsoDomainStatus.PENDING)
        return sso_domain_claims(status=self.status if self.status in SsoDomainStatus.values else None)

    def get_context_data(self, **kwargs):
        return super().get_context_data(status=self.status, statuses=SsoDomainStatus.choices, **kwargs)


class SsoDomainDecideView(OperatorPageMixin, View):
    """POST `decision=approve|reject`: the operator's decision on one claim (audited in its tenant)."""

    http_method_names = ["post"]

    def post(self, request, pk):
        decision = request.POST.get("decision")
        if decision not in ("approve", "reject"):
            raise Http404("Not found.")
        try:
            claim = sso_domain_decide(actor=request.user, domain_id=pk, approve=decision == "approve")
        except ApplicationError as error:
            if error.status_code == 404:
                raise Http404("Not found.") from error
            messages.error(request, error.message)
        else:
            messages.success(request, f"{claim.domain} ({claim.tenant.name}): {claim.get_status_display().lower()}.")
        return redirect("platform:sso_domains")
