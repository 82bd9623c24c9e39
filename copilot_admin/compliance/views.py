"""Audit log pages: the filtered log, newest first in keyset pages, and one entry with its
changes before and after (`?entry=<id>`), linked to the history of its object and actor."""

from django.http import Http404
from django.urls import NoReverseMatch, reverse
from django.utils.http import urlencode
from django.views.generic import TemplateView

from copilot_admin.access.base_views import OperatorPageMixin, TenantPageMixin
from copilot_admin.access.permissions import Perm, PlatformPerm
from copilot_admin.audit.selectors import (
    audit_entries,
    audit_entries_across_tenants,
    audit_entries_filter,
    audit_entry_get,
    audit_page,
    changes_readable,
    entry_cursor,
)
from copilot_admin.audit.services import audit_platform_view_record
from copilot_admin.compliance.forms import KNOWN_ACTIONS, KNOWN_OBJECT_TYPES, AuditFilterForm, PlatformAuditFilterForm
from copilot_admin.core.errors import NotFound

# Object type -> (page showing the object, the permission that page needs).
OBJECT_PAGES = {
    "membership": ("directory:user_edit", Perm.USERS),
    "company": ("directory:company_edit", Perm.COMPANIES),
    "role": ("access:role_edit", Perm.ROLES),
}


def history_query(**filters) -> str:
    return "?" + urlencode({name: value for name, value in filters.items() if value not in (None, "")})


class AuditLogView(TenantPageMixin, TemplateView):
    """The tenant's audit log. Reads only: an auditor sees everything and changes nothing."""

    permission_required = Perm.AUDIT_VIEW

    def get_template_names(self):
        return ["audit/entry_detail.html" if "entry" in self.request.GET else "audit/entry_list.html"]

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        if "entry" in self.request.GET:
            context.update(self._detail(self.request.GET["entry"]))
        else:
            context.update(self._list())
        return context

    def _list(self) -> dict:
        form = AuditFilterForm(self.request.GET or None)
        queryset = audit_entries(tenant=self.tenant)
        if form.is_bound and form.is_valid():
            queryset = audit_entries_filter(queryset, filters=form.filters())
        elif form.is_bound:
            queryset = queryset.none()
        page = audit_page(queryset, before=self.request.GET.get("before"), after=self.request.GET.get("after"))
        query = form.as_query() if form.is_bound else {}
        export_url = reverse("api:audit-export", kwargs={"tenant_slug": self.tenant.slug})
        return {
            "filter_form": form,
            "page": page,
            "entries": page.entries,
            "filter_query": urlencode(query),
            "older_url": history_query(**query, before=page.older) if page.older else None,
            "newer_url": history_query(**query, after=page.newer) if page.newer else None,
            "export_csv_url": export_url + history_query(**query, format="csv"),
            "export_jsonl_url": export_url + history_query(**query, format="jsonl"),
            "known_actions": KNOWN_ACTIONS,
            "known_object_types": KNOWN_OBJECT_TYPES,
        }

    def _detail(self, entry_id) -> dict:
        try:
            entry = audit_entry_get(tenant=self.tenant, entry_id=entry_id)
        except NotFound as exc:
            raise Http404("Not found.") from exc
        return {
            "entry": entry,
            "back_url": reverse("audit:list", kwargs={"tenant_slug": self.tenant.slug}),
            "changes": changes_readable(entry.changes),
            "metadata": sorted(entry.metadata.items()),
            "object_history": history_query(object_type=entry.object_type, object_id=entry.object_id)
            if entry.object_id else None,
            "actor_history": history_query(actor=entry.actor_id) if entry.actor_id else None,
            "request_history": history_query(q=entry.correlation_id) if entry.correlation_id else None,
            "object_url": self._object_url(entry),
        }

    def _object_url(self, entry) -> str | None:
        page = OBJECT_PAGES.get(entry.object_type)
        if page is None or page[1] not in self.request.permissions or not entry.object_id.isdigit():
            return None
        try:
            return reverse(page[0], kwargs={"tenant_slug": self.tenant.slug, "pk": entry.object_id})
        except NoReverseMatch:
            return None


class PlatformAuditLogView(OperatorPageMixin, TemplateView):
    """Every tenant's log (or one tenant's, or the platform's own), read-only: platform
    operators and platform auditors (others get 404: the page is not advertised). Each reading
    is recorded in the chain of the tenant it shows (the platform chain for all tenants)."""

    permission_required = PlatformPerm.AUDITOR

    def get_template_names(self):
        return ["audit/entry_detail.html" if "entry" in self.request.GET else "audit/platform_list.html"]

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        form = PlatformAuditFilterForm(self.request.GET or None)
        valid = not form.is_bound or form.is_valid()
        filters = form.filters() if form.is_bound and valid else {}
        try:
            queryset, tenant = audit_entries_across_tenants(tenant_slug=filters.pop("tenant", ""))
        except NotFound as exc:
            raise Http404("Not found.") from exc
        if "entry" in self.request.GET:
            entry = queryset.filter(pk=entry_cursor(self.request.GET["entry"]) or 0).first()
            if entry is None:
                raise Http404("Not found.")
            audit_platform_view_record(request=self.request, tenant=entry.tenant if entry.tenant_id else None,
                                       filters={"entry": entry.pk})
            context.update(
                entry=entry, back_url=reverse("platform_audit:list"), changes=changes_readable(entry.changes),
                metadata=sorted(entry.metadata.items()),
                object_history=history_query(object_type=entry.object_type, object_id=entry.object_id)
                if entry.object_id else None,
                actor_history=history_query(actor=entry.actor_id) if entry.actor_id else None,
                request_history=history_query(q=entry.correlation_id) if entry.correlation_id else None,
            )
            return context
        audit_platform_view_record(request=self.request, tenant=tenant, filters=filters)
        queryset = audit_entries_filter(queryset, filters=filters) if valid else queryset.none()
        page = audit_page(queryset, before=self.request.GET.get("before"), after=self.request.GET.get("after"))
        query = form.as_query() if form.is_bound else {}
        context.update(
            filter_form=form, page=page, entries=page.entries, filter_query=urlencode(query),
            older_url=history_query(**query, before=page.older) if page.older else None,
            newer_url=history_query(**query, after=page.newer) if page.newer else None,
            known_actions=KNOWN_ACTIONS, known_object_types=KNOWN_OBJECT_TYPES,
        )
        return context
