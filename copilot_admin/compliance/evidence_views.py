"""Evidence pages for auditors: the signed checkpoints (with the file to keep elsewhere), the
access review at a moment, and the data-exchange record (printable, with its diagram)."""

from django.contrib import messages
from django.shortcuts import redirect
from django.urls import reverse
from django.utils import timezone
from django.utils.http import urlencode
from django.views.generic import TemplateView

from copilot_admin.access.base_views import TenantObjectMixin, TenantPageMixin
from copilot_admin.access.models import SecurityRole
from copilot_admin.access.permissions import Perm
from copilot_admin.audit.checkpoints import audit_checkpoints
from copilot_admin.compliance.evidence_serializers import AccessReviewForm
from copilot_admin.compliance.exchange import data_exchange_record
from copilot_admin.compliance.models import Decision, ReviewCampaign
from copilot_admin.compliance.review import access_review
from copilot_admin.compliance.review_selectors import campaign_items, campaigns
from copilot_admin.compliance.review_services import campaign_complete, campaign_item_decide, campaign_start
from copilot_admin.core.errors import ApplicationError
from copilot_admin.core.forms import posted_id

CHECKPOINTS_SHOWN = 50


class CheckpointsPage(TenantPageMixin, TemplateView):
    permission_required = Perm.AUDIT_VIEW
    template_name = "compliance/checkpoints.html"

    def get_context_data(self, **kwargs):
        api = reverse("api:audit-checkpoints", kwargs={"tenant_slug": self.tenant.slug})
        return super().get_context_data(
            checkpoints=list(audit_checkpoints(tenant=self.tenant)[:CHECKPOINTS_SHOWN]),
            download_url=f"{api}?download=true", **kwargs,
        )


class AccessReviewPage(TenantPageMixin, TemplateView):
    permission_required = Perm.AUDIT_VIEW
    template_name = "compliance/access_review.html"

    def get_context_data(self, **kwargs):
        form = AccessReviewForm(self.request.GET)
        rows, at = [], None
        if form.is_valid():
            at = form.cleaned_data["at"] or timezone.now()
            rows = access_review(tenant=self.tenant, at=at)
        api = reverse("api:access-review", kwargs={"tenant_slug": self.tenant.slug})
        query = {"at": at.isoformat()} if at else {}
        return super().get_context_data(
            form=form, rows=rows, at=at, csv_url=f"{api}?{urlencode({**query, 'format': 'csv'})}",
            json_url=f"{api}?{urlencode(query)}", **kwargs,
        )


# The diagram's geometry: boxes left to right, one row per deployment in the zone.
_BOX_W, _ROW_H, _TOP = 190, 64, 40


class DataExchangePage(TenantPageMixin, TemplateView):
    permission_required = Perm.AUDIT_VIEW
    template_name = "compliance/data_exchange.html"

    def get_context_data(self, **kwargs):
        record = data_exchange_record(tenant=self.tenant)
        rows = max(1, len(record["recipients"]))
        deployments = [
            {**recipient, "y": _TOP + index * _ROW_H, "mid": _TOP + index * _ROW_H + 24}
            for index, recipient in enumerate(record["recipients"])
        ]
        height = _TOP + rows * _ROW_H + 40
        middle = _TOP + (rows * _ROW_H) // 2 - 24
        return super().get_context_data(
            record=record, deployments=deployments,
            diagram={"height": height, "middle": middle, "mid": middle + 24, "zone_h": rows * _ROW_H + 8,
                     "box_w": _BOX_W, "back_y": height - 16},
            json_url=reverse("api:data-exchange", kwargs={"tenant_slug": self.tenant.slug}), **kwargs,
        )


class ReviewsPage(TenantPageMixin, TemplateView):
    """The tenant's access review campaigns; an auditor starts one here (POST)."""

    permission_required = Perm.AUDIT_VIEW
    template_name = "compliance/reviews.html"

    def get_context_data(self, **kwargs):
        return super().get_context_data(campaigns=list(campaigns(tenant=self.tenant)[:100]), **kwargs)

    def post(self, request, *args, **kwargs):
        try:
            campaign = campaign_start(actor=self.membership, name=request.POST.get("name", "")[:120])
        except ApplicationError as error:
            messages.error(request, error.message)
            return redirect("compliance:reviews", tenant_slug=self.tenant.slug)
        messages.success(request, "The review started: the tenant administrator now confirms or flags each member.")
        return redirect("compliance:review", tenant_slug=self.tenant.slug, pk=campaign.pk)


class ReviewPage(TenantObjectMixin, TemplateView):
    """One campaign: each member's captured access and decision. The administrator confirms
    or flags (with the change); the auditor completes and exports. The services check who may."""

    permission_required = Perm.AUDIT_VIEW
    model = ReviewCampaign
    template_name = "compliance/review.html"

    def get_context_data(self, **kwargs):
        items = list(campaign_items(campaign=self.object))
        roles = SecurityRole.objects.for_tenant(self.tenant).filter(is_active=True).order_by("name")
        return super().get_context_data(
            campaign=self.object, items=items, roles=roles,
            pending=sum(1 for item in items if item.decision == Decision.PENDING),
            export_url=reverse("api:access-reviews-export", kwargs={"tenant_slug": self.tenant.slug,
                                                                    "pk": self.object.pk}),
            **kwargs,
        )

    def post(self, request, *args, **kwargs):
        try:
            message = self._perform(request.POST)
        except ApplicationError as error:
            messages.error(request, error.message)
        else:
            messages.success(request, message)
        return redirect("compliance:review", tenant_slug=self.tenant.slug, pk=self.object.pk)

    def _perform(self, data) -> str:
        if data.get("op") == "complete":
            campaign_complete(actor=self.membership, campaign=self.object)
            return "The review is completed."
        item = campaign_items(campaign=self.object).filter(pk=posted_id(data.get("item"))).first()
        if item is None:
            raise ApplicationError("No such member in this review.", code="invalid")
        role = None
        if posted_id(data.get("role")):
            role = SecurityRole.objects.for_tenant(self.tenant).filter(pk=posted_id(data["role"])).first()
        campaign_item_decide(actor=self.membership, item=item, decision=data.get("decision", ""),
                             note=data.get("note", ""), role=role, deactivate=data.get("deactivate") == "on")
        return f"Decided: {item.email}."
