"""Audit log pages: the filtered log, newest first in keyset pages (filters as choices with
their counts), and a page per entry (`<id>/`) with its changes readable, linked to the object,
the object's history, the actor's history and the other entries of the same request."""

from django.http import Http404, HttpResponseBadRequest, StreamingHttpResponse
from django.shortcuts import redirect
from django.urls import NoReverseMatch, reverse
from django.utils.http import urlencode
from django.views.generic import TemplateView, View

from copilot_admin.access.base_views import OperatorPageMixin, TenantPageMixin
from copilot_admin.access.models import SecurityRole
from copilot_admin.access.permissions import Perm, PlatformPerm
from copilot_admin.audit.export import ExportFormat
from copilot_admin.audit.readable import OBJECT_TYPE_LABELS, ReadableNames, entry_sentence
from copilot_admin.audit.selectors import (
    audit_entries,
    audit_entries_across_tenants,
    audit_entries_filter,
    audit_entry_get,
    audit_facets,
    audit_page,
    entry_cursor,
)
from copilot_admin.audit.services import audit_platform_view_record
from copilot_admin.compliance.forms import KNOWN_ACTIONS, KNOWN_OBJECT_TYPES, AuditFilterForm, PlatformAuditFilterForm
from copilot_admin.compliance.services import platform_audit_export_start
from copilot_admin.core.errors import NotFound
from tenants.models import ClientCompany, Membership

# Object type -> (page showing the object, the permission that page needs).
OBJECT_PAGES = {
    "membership": ("directory:user_edit", Perm.USERS),
    "company": ("directory:company_edit", Perm.COMPANIES),
    "role": ("access:role_edit", Perm.ROLES),
}
# Object type -> the log's filter "changes to this ..." that lists its history.
SUBJECT_FILTERS = {"membership": "user", "role": "role", "company": "company"}


def with_sentences(entries: list) -> list:
    """The entries, each with `sentence`: what happened, in one sentence (no query)."""
    for entry in entries:
        entry.sentence = entry_sentence(entry)
    return entries


def entry_links(entry, *, list_url: str) -> dict:
    """Links from one entry: its object's history, its actor's, and the entries of its request."""
    subject = SUBJECT_FILTERS.get(entry.object_type)
    if subject and entry.object_id.isdigit():
        object_history = list_url + history_query(**{subject: entry.object_id})
    elif entry.object_id:
        object_history = list_url + history_query(object_type=entry.object_type, object_id=entry.object_id)
    else:
        object_history = None
    return {
        "object_history": object_history,
        "actor_history": list_url + history_query(actor=entry.actor_id) if entry.actor_id else None,
        "request_history": list_url + history_query(correlation_id=entry.correlation_id)
        if entry.correlation_id else None,
    }


def history_query(**filters) -> str:
    return "?" + urlencode({name: value for name, value in filters.items() if value not in (None, "")})


class AuditLogView(TenantPageMixin, TemplateView):
    """The tenant's audit log. Reads only: an auditor sees everything and changes nothing.
    (`?entry=<id>`, the entry's former address, leads to the entry's own page.)"""

    permission_required = Perm.AUDIT_VIEW
    template_name = "audit/entry_list.html"

    def get(self, request, *args, **kwargs):
        if "entry" in request.GET:
            entry_id = entry_cursor(request.GET["entry"])
            if entry_id is None:
                raise Http404("Not found.")
            return redirect("audit:entry", tenant_slug=self.tenant.slug, pk=entry_id)
        return super().get(request, *args, **kwargs)

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        form = AuditFilterForm(self.request.GET or None)
        entries = audit_entries(tenant=self.tenant)
        queryset = entries
        valid = form.is_bound and form.is_valid()
        if valid:
            queryset = audit_entries_filter(entries, filters=form.filters())
        elif form.is_bound:
            queryset = entries.none()
        # The choices count what the chosen period holds (all of it without one).
        chosen = form.filters() if valid else {}
        period = {name: value for name, value in chosen.items() if name in ("since", "until")}
        facets = audit_facets(audit_entries_filter(entries, filters=period))
        form.offer_choices(facets=facets, subjects=self._subjects())
        page = audit_page(queryset, before=self.request.GET.get("before"), after=self.request.GET.get("after"))
        query = form.as_query() if form.is_bound else {}
        export_url = reverse("api:audit-export", kwargs={"tenant_slug": self.tenant.slug})
        context.update({
            "filter_form": form,
            "page": page,
            "entries": with_sentences(page.entries),
            "filter_query": urlencode(query),
            "older_url": history_query(**query, before=page.older) if page.older else None,
            "newer_url": history_query(**query, after=page.newer) if page.newer else None,
            "export_csv_url": export_url + history_query(**query, format="csv"),
            "export_jsonl_url": export_url + history_query(**query, format="jsonl"),
            "can_export": Perm.AUDIT_EXPORT in self.request.permissions,
        })
        return context

    def _subjects(self) -> dict:
        """The filters "changes to this user / role / company": the tenant's, by name."""
        members = Membership.objects.for_tenant(self.tenant).select_related("user").order_by("user__email")
        roles = SecurityRole.objects.for_tenant(self.tenant).order_by("name")
        companies = ClientCompany.objects.for_tenant(self.tenant).order_by("name")
        return {
            "user": [(m.pk, m.user.email) for m in members],
            "role": [(r.pk, r.name) for r in roles],
            "company": [(c.pk, c.name) for c in companies],
        }


class AuditEntryView(TenantPageMixin, TemplateView):
    """One entry of the tenant's log, on a page of its own: what happened in one sentence, its
    changes readable, its place in the hash chain, and links to its object, the object's
    history, the actor's history and the other entries of the same request."""

    permission_required = Perm.AUDIT_VIEW
    template_name = "audit/entry_detail.html"

    def prepare(self) -> None:
        try:
            self.entry = audit_entry_get(tenant=self.tenant, entry_id=self.kwargs["pk"])
        except NotFound as exc:
            raise Http404("Not found.") from exc

    def get_context_data(self, **kwargs):
        entry = self.entry
        list_url = reverse("audit:list", kwargs={"tenant_slug": self.tenant.slug})
        names = ReadableNames(tenant_id=self.tenant.pk)
        same_request = (
            with_sentences(list(audit_entries(tenant=self.tenant).filter(correlation_id=entry.correlation_id)
                                .exclude(pk=entry.pk).order_by("id")[:20]))
            if entry.correlation_id else []
        )
        return super().get_context_data(
            entry=entry,
            sentence=entry_sentence(entry, names.changes(entry)),
            back_url=list_url,
            changes=names.rows(entry),
            metadata=sorted((key, value) for key, value in entry.metadata.items() if key != "raw"),
            raw_changes=(entry.metadata or {}).get("raw") or {},
            same_request=same_request,
            object_url=self._object_url(entry),
            object_type_label=OBJECT_TYPE_LABELS.get(entry.object_type, entry.object_type),
            **entry_links(entry, list_url=list_url),
            **kwargs,
        )

    def _object_url(self, entry) -> str | None:
        page = OBJECT_PAGES.get(entry.object_type)
        if page is None or not entry.object_id.isdigit():
            return None
        if page[1] not in self.request.permissions and Perm.DIRECTORY_VIEW not in self.request.permissions:
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
            names = ReadableNames(tenant_id=entry.tenant_id)
            list_url = reverse("platform_audit:list")
            context.update(
                entry=entry, back_url=list_url, changes=names.rows(entry),
                sentence=entry_sentence(entry, names.changes(entry)),
                metadata=sorted((key, value) for key, value in entry.metadata.items() if key != "raw"),
                raw_changes=(entry.metadata or {}).get("raw") or {},
                object_history=list_url + history_query(
                    tenant=entry.tenant.slug if entry.tenant_id and entry.tenant else "platform",
                    object_type=entry.object_type, object_id=entry.object_id) if entry.object_id else None,
                actor_history=list_url + history_query(actor=entry.actor_id) if entry.actor_id else None,
                request_history=list_url + history_query(correlation_id=entry.correlation_id)
                if entry.correlation_id else None,
            )
            return context
        audit_platform_view_record(request=self.request, tenant=tenant, filters=filters)
        queryset = audit_entries_filter(queryset, filters=filters) if valid else queryset.none()
        page = audit_page(queryset, before=self.request.GET.get("before"), after=self.request.GET.get("after"))
        query = form.as_query() if form.is_bound else {}
        export_url = reverse("platform_audit:export")
        context.update(
            filter_form=form, page=page, entries=with_sentences(page.entries), filter_query=urlencode(query),
            export_csv_url=export_url + history_query(**query, format="csv"),
            export_jsonl_url=export_url + history_query(**query, format="jsonl"),
            older_url=history_query(**query, before=page.older) if page.older else None,
            newer_url=history_query(**query, after=page.newer) if page.newer else None,
            known_actions=KNOWN_ACTIONS, known_object_types=KNOWN_OBJECT_TYPES,
        )
        return context


class PlatformAuditExportView(OperatorPageMixin, View):
    """Every tenant's entries (or one tenant's, `tenant=`), with the same filters, streamed as
    CSV or JSON Lines: each row names its tenant and carries its chain position and hashes.
    Platform operators and platform auditors only; each export is recorded."""

    permission_required = PlatformPerm.AUDITOR

    def get(self, request, *args, **kwargs):
        form = PlatformAuditFilterForm(request.GET)
        fmt = request.GET.get("format", ExportFormat.CSV)
        if fmt not in ExportFormat.CHOICES or not form.is_valid():
            return HttpResponseBadRequest("Invalid filters or format (csv or jsonl).", content_type="text/plain")
        try:
            filename, content_type, stream = platform_audit_export_start(
                actor=request.user, filters=form.filters(), fmt=fmt, request=request,
            )
        except NotFound as exc:
            raise Http404("Not found.") from exc
        response = StreamingHttpResponse(stream, content_type=content_type)
        response["Content-Disposition"] = f'attachment; filename="{filename}"'
        response["Cache-Control"] = "no-store"
        return response
