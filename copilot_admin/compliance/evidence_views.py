"""Evidence pages for auditors: the signed checkpoints (with the file to keep elsewhere), the
access review at a moment, and the data-exchange record (printable, with its diagram)."""

from django.urls import reverse
from django.utils import timezone
from django.utils.http import urlencode
from django.views.generic import TemplateView

from copilot_admin.access.base_views import TenantPageMixin
from copilot_admin.access.permissions import Perm
from copilot_admin.audit.checkpoints import audit_checkpoints
from copilot_admin.compliance.evidence_serializers import AccessReviewForm
from copilot_admin.compliance.exchange import data_exchange_record
from copilot_admin.compliance.review import access_review

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
