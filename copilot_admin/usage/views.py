"""Usage pages: the dashboard (charts and tables), the tenant's limits, abuse cases, the
notifications sent and the webhooks with their delivery log. Thin adapters over `selectors` (reads) and `services` (changes)."""

from urllib.parse import urlencode

from django.core.paginator import Paginator
from django.db.models import Prefetch
from django.urls import reverse
from django.utils import timezone
from django.views.generic import FormView, TemplateView

from copilot_admin.access.base_views import TenantDetailView, TenantListView, TenantObjectMixin, TenantPageMixin
from copilot_admin.access.permissions import Perm, feature_choices
from copilot_admin.core.errors import ApplicationError
from copilot_admin.core.forms import ServiceFormMixin, form_add_service_error
from copilot_admin.usage import selectors, services, webhook_services
from copilot_admin.usage.exports import GroupBy, usage_grouped
from copilot_admin.usage.forms import (
    CaseDecisionForm,
    CaseFilterForm,
    ConfirmForm,
    TenantLimitsForm,
    UsageRangeForm,
    WebhookForm,
    case_actions,
)
from copilot_admin.usage.limits import POLICY_FIELDS, TENANT_SETTING_FIELDS
from copilot_admin.usage.models import (
    AbuseCase,
    CaseKind,
    CaseStatus,
    LimitName,
    Notification,
    Strike,
    Webhook,
    WebhookEvent,
)


def _with_feature_labels(summary: dict) -> dict:
    """The per-feature rows with each feature's label from the permission catalogue (a feature
    no longer declared keeps its name)."""
    labels = dict(feature_choices())
    rows = [{**row, "label": labels.get(row["feature"], row["feature"])} for row in summary["per_feature"]]
    return {**summary, "per_feature": rows}


def _chart_data(summary: dict) -> dict:
    """What the dashboard's charts draw (the tables show the same numbers)."""
    return {
        "days": [row["day"].isoformat() for row in summary["per_day"]],
        "requests": [row["requests"] for row in summary["per_day"]],
        "tokens": [row["tokens"] for row in summary["per_day"]],
        "rate_limited": [row["rate_limited"] for row in summary["per_day"]],
        "features": [row["label"] for row in summary["per_feature"]],
        "feature_requests": [row["requests"] for row in summary["per_feature"]],
        "feature_tokens": [row["tokens"] for row in summary["per_feature"]],
        "users": [row["email"] for row in summary["per_user"][:15]],
        "user_tokens": [row["tokens"] for row in summary["per_user"][:15]],
    }


def _empty_reason(tenant, summary: dict) -> str:
    """Why the charts are empty, in a sentence ("" when they are not)."""
    totals = summary["totals"]
    if totals["requests"] or totals["rate_limited"]:
        return ""
    period = f"between {summary['since']:%Y-%m-%d} and {summary['until']:%Y-%m-%d} (UTC)"
    if not tenant.plan_includes_copilot:
        return (f"The copilot is not included in the {tenant.get_plan_display()} plan, so there is no usage {period}.")
    if not tenant.copilot_enabled:
        return f"No copilot calls {period}: the copilot is switched off for {tenant.name}."
    return (f"No copilot calls {period}. Calls appear here once members use a feature (the playground counts too); "
            "calls refused by a limit are counted as refusals.")


class UsageDashboardView(TenantPageMixin, TemplateView):
    """Requests and tokens per day, feature and user; who is near a limit; restricted users;
    open abuse cases. A fixed number of queries, from the roll-ups only (works without Redis)."""

    permission_required = Perm.USAGE_VIEW
    template_name = "usage/dashboard.html"

    def get_context_data(self, **kwargs):
        default_since, default_until = selectors.default_range()
        form = UsageRangeForm(self.request.GET or None, initial={"since": default_since, "until": default_until})
        since, until = form.range()
        summary = _with_feature_labels(selectors.usage_summary(tenant=self.tenant, since=since, until=until))
        effective = selectors.effective_limits(self.tenant)
        now = timezone.now()
        per_company = usage_grouped(tenant=self.tenant, since=since, until=until, group_by=GroupBy.COMPANY)
        export_url = reverse("api:usage-export", kwargs={"tenant_slug": self.tenant.slug})
        return super().get_context_data(
            form=form,
            summary=summary,
            per_company=per_company,
            exports=[
                (label, f"{export_url}?{urlencode({'format': fmt, 'group_by': group, 'since': since, 'until': until})}")
                for group, label in (("company", "per company"), ("user", "per user"), ("feature", "per feature"),
                                     ("day", "per day"))
                for fmt in ("csv",)
            ],
            empty_reason=_empty_reason(self.tenant, summary),
            chart=_chart_data(summary),
            limits=effective,
            limit_labels=dict(LimitName.choices),
            near=[item.as_dict() for item in selectors.near_limits(tenant=self.tenant, limits=effective, now=now)],
            restricted=list(selectors.restricted_access(tenant=self.tenant, now=now)[:50]),
            open_cases=list(selectors.abuse_cases(tenant=self.tenant, status=CaseStatus.OPEN)[:20]),
            **kwargs,
        )


class LimitsPageView(ServiceFormMixin, TenantPageMixin, FormView):
    """The tenant's usage limits: overrides within the platform maxima."""

    permission_required = Perm.LIMITS
    template_name = "usage/limits.html"

    def prepare(self) -> None:
        self.describe = selectors.limits_describe(self.tenant)

    def get_form(self, form_class=None):
        return TenantLimitsForm(**self.get_form_kwargs(), describe=self.describe)

    def get_initial(self):
        own = self.describe["own_settings"]
        return {
            **self.describe["overrides"],
            "warning_thresholds": ", ".join(str(t) for t in own["warning_thresholds"] or []),
            "alert_digest": bool(own["alert_digest"]),
            "anomaly_auto_suspend": bool(own["anomaly_auto_suspend"]),
        }

    def get_context_data(self, **kwargs):
        d = self.describe
        rows = [
            {"label": label, "value": d[name], "default": d["platform_defaults"][name],
             "maximum": d["platform_maxima"][name], "own": d["overrides"][name] is not None}
            for name, label in LimitName.choices
        ]
        return super().get_context_data(describe=d, rows=rows, **kwargs)

    def perform(self, form) -> str:
        services.tenant_limits_update(
            actor=self.membership,
            changes={name: form.cleaned_data.get(name) for name in (*POLICY_FIELDS, *TENANT_SETTING_FIELDS)},
        )
        return "The usage limits were saved."

    def get_success_url(self):
        return reverse("usage:limits", kwargs={"tenant_slug": self.tenant.slug})


class AbuseCaseListView(TenantListView):
    permission_required = Perm.USAGE_VIEW
    model = AbuseCase
    template_name = "usage/abuse_case_list.html"

    def narrow_queryset(self, queryset):
        self.filter_form = CaseFilterForm(self.request.GET or {"status": CaseStatus.OPEN})
        if self.filter_form.is_valid():
            data = self.filter_form.cleaned_data
            if data["status"]:
                queryset = queryset.filter(status=data["status"])
            if data["kind"]:
                queryset = queryset.filter(kind=data["kind"])
        return selectors.narrow_cases(queryset, tenant=self.tenant)

    def get_context_data(self, **kwargs):
        return super().get_context_data(filter_form=self.filter_form, **kwargs)


class AbuseCaseDetailView(TenantDetailView):
    """One case: the user, what happened, recent strikes, the e-mails sent, the decisions possible."""

    permission_required = Perm.USAGE_VIEW
    model = AbuseCase
    template_name = "usage/abuse_case_detail.html"
    context_object_name = "case"

    def narrow_queryset(self, queryset):
        return selectors.narrow_cases(queryset, tenant=self.tenant).prefetch_related(
            Prefetch("notifications", queryset=Notification.objects.for_tenant(self.tenant).order_by("-created_at"))
        )

    def get_context_data(self, **kwargs):
        case = self.object
        strikes = Strike.objects.for_tenant(self.tenant).filter(membership_id=case.membership_id).order_by(
            "-occurred_at"
        )[:20]
        chart = (case.details or {}).get("chart") if case.kind == CaseKind.ANOMALY else None
        return super().get_context_data(
            strikes=list(strikes),
            evidence_chart=chart,
            evidence_rows=list(zip(chart["labels"], chart["calls"], strict=False)) if chart else [],
            actions=case_actions(case, access_status=case.access_status),
            may_decide=Perm.LIMITS in self.request.permissions,
            **kwargs,
        )


class AbuseCaseResolveView(ServiceFormMixin, TenantObjectMixin, FormView):
    """Decide an open case: reinstate, terminate or dismiss, with a reason."""

    permission_required = Perm.LIMITS
    model = AbuseCase
    template_name = "usage/abuse_case_resolve.html"

    def narrow_queryset(self, queryset):
        return selectors.narrow_cases(queryset, tenant=self.tenant)

    def get_form(self, form_class=None):
        actions = case_actions(self.object, access_status=self.object.access_status)
        kwargs = self.get_form_kwargs()
        if self.request.method == "GET" and self.request.GET.get("action") in actions:
            kwargs["initial"] = {"action": self.request.GET["action"]}
        return CaseDecisionForm(**kwargs, actions=actions)

    def get_context_data(self, **kwargs):
        return super().get_context_data(case=self.object, **kwargs)

    def perform(self, form) -> str:
        action = form.cleaned_data["action"]
        service = {"reinstate": services.case_reinstate, "terminate": services.case_terminate,
                   "dismiss": services.case_dismiss}
        service[action](actor=self.membership, case=self.object, reason=form.cleaned_data["reason"])
        return {
            "reinstate": "The copilot access was reinstated.",
            "terminate": "The copilot access was terminated; a platform operator can reinstate it.",
            "dismiss": "The case was dismissed.",
        }[action]

    def get_success_url(self):
        return reverse("usage:abuse_case", kwargs={"tenant_slug": self.tenant.slug, "pk": self.object.pk})


class NotificationListView(TenantListView):
    """Every notification e-mail of the tenant: to whom, when, why, and whether it was delivered."""

    permission_required = Perm.USAGE_VIEW
    model = Notification
    template_name = "usage/notification_list.html"

    def narrow_queryset(self, queryset):
        return queryset.order_by("-created_at", "-pk")



# -- webhooks -----------------------------------------------------------------------------------

def _webhook_list_url(tenant) -> str:
    return reverse("usage:webhooks", kwargs={"tenant_slug": tenant.slug})


class WebhookListView(TenantListView):
    """The tenant's webhooks: where events go, whether they are on, and why one was switched off."""

    permission_required = Perm.LIMITS
    model = Webhook
    template_name = "usage/webhook_list.html"

    def narrow_queryset(self, queryset):
        return queryset.order_by("created_at", "pk")


class WebhookCreateView(TenantPageMixin, FormView):
    """A new webhook; the answer shows its signing secret, this once."""

    permission_required = Perm.LIMITS
    template_name = "usage/webhook_form.html"
    form_class = WebhookForm

    def get_initial(self):
        return {"events": list(WebhookEvent.values), "active": True}

    def form_valid(self, form):
        data = form.cleaned_data
        try:
            webhook, secret = webhook_services.webhook_create(
                actor=self.membership, url=data["url"], events=data["events"], format=data["format"],
                active=data["active"], secret=data["secret"] or None,
            )
        except ApplicationError as error:
            form_add_service_error(form, error)
            return self.form_invalid(form)
        return self.render_to_response(
            self.get_context_data(webhook=webhook, secret=secret, created=True), status=201
        )


class WebhookEditView(ServiceFormMixin, TenantObjectMixin, FormView):
    """A webhook's settings, with the buttons to send a test event and to delete it."""

    permission_required = Perm.LIMITS
    model = Webhook
    template_name = "usage/webhook_form.html"
    form_class = WebhookForm

    def get_initial(self):
        hook = self.object
        return {"url": hook.url, "events": hook.events, "format": hook.format, "active": hook.active}

    def get_context_data(self, **kwargs):
        return super().get_context_data(webhook=self.object, **kwargs)

    def perform(self, form) -> str:
        data = dict(form.cleaned_data)
        if not data.get("secret"):
            data.pop("secret", None)
        webhook_services.webhook_update(actor=self.membership, webhook=self.object, **data)
        return "The webhook was saved."

    def get_success_url(self):
        return reverse("usage:webhook_edit", kwargs={"tenant_slug": self.tenant.slug, "pk": self.object.pk})


class WebhookTestView(ServiceFormMixin, TenantObjectMixin, FormView):
    """Send a test event to the webhook (confirmed by a button)."""

    permission_required = Perm.LIMITS
    model = Webhook
    template_name = "usage/webhook_confirm.html"
    form_class = ConfirmForm

    def get_context_data(self, **kwargs):
        return super().get_context_data(webhook=self.object, action="test", **kwargs)

    def perform(self, form) -> str:
        webhook_services.webhook_test_send(actor=self.membership, webhook=self.object)
        return "A test event was queued; its delivery shows below."

    def get_success_url(self):
        return reverse("usage:webhook_deliveries", kwargs={"tenant_slug": self.tenant.slug, "pk": self.object.pk})


class WebhookDeleteView(ServiceFormMixin, TenantObjectMixin, FormView):
    """Delete the webhook and its delivery log (confirmed by a button)."""

    permission_required = Perm.LIMITS
    model = Webhook
    template_name = "usage/webhook_confirm.html"
    form_class = ConfirmForm

    def get_context_data(self, **kwargs):
        return super().get_context_data(webhook=self.object, action="delete", **kwargs)

    def perform(self, form) -> str:
        webhook_services.webhook_delete(actor=self.membership, webhook=self.object)
        return "The webhook was deleted."

    def get_success_url(self):
        return _webhook_list_url(self.tenant)


class WebhookDeliveryListView(TenantDetailView):
    """A webhook's delivery log: each event, its status, attempts and latency, newest first."""

    permission_required = Perm.LIMITS
    model = Webhook
    template_name = "usage/webhook_deliveries.html"
    context_object_name = "webhook"
    paginate_by = 50

    def get_context_data(self, **kwargs):
        deliveries = selectors.webhook_deliveries(tenant=self.tenant, webhook=self.object)
        page = Paginator(deliveries, self.paginate_by).get_page(self.request.GET.get("page"))
        return super().get_context_data(page_obj=page, paginator=page.paginator, deliveries=page.object_list,
                                        is_paginated=page.has_other_pages(), **kwargs)
