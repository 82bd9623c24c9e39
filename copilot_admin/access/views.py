"""Security role pages: list, permission matrix editor, clone, deactivate."""

from typing import ClassVar

from django.contrib import messages
from django.db.models import Count
from django.shortcuts import redirect
from django.urls import reverse
from django.views.generic import FormView, TemplateView

from copilot_admin.access import services
from copilot_admin.access.base_views import TenantListView, TenantObjectMixin, TenantPageMixin
from copilot_admin.access.forms import RoleForm
from copilot_admin.access.models import SecurityRole
from copilot_admin.access.permissions import Perm, modules
from copilot_admin.core.errors import ApplicationError
from copilot_admin.core.forms import ServiceFormMixin, form_add_service_error
from copilot_admin.core.sorting import sort_columns, sort_fields, sort_param


class RoleListView(TenantListView):
    permission_required = Perm.ROLES
    read_permission = Perm.DIRECTORY_VIEW
    model = SecurityRole
    template_name = "access/role_list.html"

    # ?sort=<key> (or -<key>), as on the users list (core/sorting.py); the default keeps system roles first.
    SORTS: ClassVar[dict[str, tuple[str, ...]]] = {
        "default": ("-is_system", "name", "pk"), "name": ("name", "pk"), "type": ("user_type", "name", "pk"),
        "users": ("user_count", "name", "pk"),
        "status": ("is_active", "name", "pk"),
    }
    # Permissions (a JSON list) is shown, not sorted: its length has no portable SQL on PostgreSQL and SQLite.
    COLUMNS: ClassVar[dict[str, str]] = {"name": "Role", "type": "For", "users": "Users", "status": "Status"}

    def narrow_queryset(self, queryset):
        self.sort = sort_param(self.request, self.SORTS, default="default")
        return queryset.annotate(user_count=Count("memberships")).order_by(*sort_fields(self.SORTS, self.sort))

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context["sort_columns"] = sort_columns(self.request, self.COLUMNS, self.sort)
        return context


class RoleCreateView(ServiceFormMixin, TenantPageMixin, FormView):
    """A new role, from scratch or (?clone_from=<id>) starting from an existing one."""

    permission_required = Perm.ROLES
    form_class = RoleForm
    template_name = "access/role_form.html"

    def _source(self):
        source_id = self.request.GET.get("clone_from", "")
        if not source_id.isdigit():
            return None
        return SecurityRole.objects.for_tenant(self.tenant).filter(pk=source_id).first()

    def get_initial(self):
        source = self._source()
        if source is None:
            return {}
        return {
            "name": f"{source.name} (copy)",
            "description": source.description,
            "user_type": source.user_type,
            "permissions": source.permissions,
        }

    def get_context_data(self, **kwargs):
        return super().get_context_data(source=self._source(), **kwargs)

    def perform(self, form) -> str:
        source = self._source()
        if source is None or form.cleaned_data.get("user_type", source.user_type) != source.user_type:
            role = services.role_create(actor=self.membership, **form.cleaned_data)
        else:
            data = {key: value for key, value in form.cleaned_data.items() if key != "user_type"}
            role = services.role_clone(actor=self.membership, source=source, **data)
        return f"The role {role.name} was created."

    def get_success_url(self):
        return reverse("access:roles", kwargs={"tenant_slug": self.tenant.slug})


class RoleEditView(TenantObjectMixin, FormView):
    """The permission matrix of one role; system roles are shown read-only."""

    permission_required = Perm.ROLES
    read_permission = Perm.DIRECTORY_VIEW
    model = SecurityRole
    form_class = RoleForm
    template_name = "access/role_form.html"

    def get_form_kwargs(self):
        kwargs = super().get_form_kwargs()
        kwargs["lock_user_type"] = self.object.memberships.exists()
        return kwargs

    def get_initial(self):
        return {
            "name": self.object.name,
            "description": self.object.description,
            "user_type": self.object.user_type,
            "permissions": self.object.permissions,
        }

    def get_context_data(self, **kwargs):
        return super().get_context_data(object=self.object, read_only=self.object.is_system or self.read_only, **kwargs)

    def post(self, request, *args, **kwargs):
        form = self.get_form()
        action = request.POST.get("action", "save")
        try:
            if action in ("deactivate", "activate"):
                services.role_update(actor=self.membership, role=self.object, is_active=action == "activate")
                messages.success(request, f"The role {self.object.name} was {action}d.")
                return redirect("access:roles", tenant_slug=self.tenant.slug)
            if action == "delete":
                services.role_delete(actor=self.membership, role=self.object)
                messages.success(request, f"The role {self.object.name} was deleted.")
                return redirect("access:roles", tenant_slug=self.tenant.slug)
            if not form.is_valid():
                return self.form_invalid(form)
            services.role_update(actor=self.membership, role=self.object, **form.cleaned_data)
        except ApplicationError as error:
            form.is_valid()
            form_add_service_error(form, error)
            return self.form_invalid(form)
        messages.success(request, f"The role {form.cleaned_data['name']} was saved.")
        return redirect("access:roles", tenant_slug=self.tenant.slug)


class _RoleConfirmView(TenantObjectMixin, TemplateView):
    """A confirmation page of its own (no JavaScript needed): what follows, or why it cannot be
    done yet (users hold the role; the only active role of its user type)."""

    permission_required = Perm.ROLES
    model = SecurityRole
    template_name = "confirm.html"
    verb = ""

    def get_context_data(self, **kwargs):
        role = self.object
        return super().get_context_data(
            title=f"{self.verb.capitalize()} the role {role.name}?",
            blockers=services.role_removal_blockers(role=role),
            consequences=self.consequences(role),
            confirm_label=self.verb.capitalize(),
            cancel_url=reverse("access:role_edit", kwargs={"tenant_slug": self.tenant.slug, "pk": role.pk}),
            **kwargs,
        )

    def post(self, request, *args, **kwargs):
        try:
            self.perform()
        except ApplicationError as error:
            messages.error(request, error.message)
            return redirect(request.path)
        messages.success(request, f"The role {self.object.name} was {self.verb}d.")
        return redirect("access:roles", tenant_slug=self.tenant.slug)


class RoleDeactivateView(_RoleConfirmView):
    verb = "deactivate"

    def narrow_queryset(self, queryset):
        return queryset.filter(is_active=True)

    def consequences(self, role):
        return [
            f"{role.name} can no longer be given to users; nobody holds it now, so nobody loses access.",
            "You can activate it again from its page.",
        ]

    def perform(self):
        services.role_update(actor=self.membership, role=self.object, is_active=False)


class RoleDeleteView(_RoleConfirmView):
    verb = "delete"

    def narrow_queryset(self, queryset):
        return queryset.filter(is_system=False)

    def consequences(self, role):
        return [f"{role.name} is removed for good; its changes stay in the audit log."]

    def perform(self):
        services.role_delete(actor=self.membership, role=self.object)


class RoleMatrixView(TenantPageMixin, TemplateView):
    """Every role of the tenant against every permission of the catalogue, on one page: who
    may do what, at a glance (administrators and auditors)."""

    permission_required = Perm.ROLES
    read_permission = Perm.DIRECTORY_VIEW
    template_name = "access/role_matrix.html"

    def get_context_data(self, **kwargs):
        roles = list(
            SecurityRole.objects.for_tenant(self.tenant).annotate(user_count=Count("memberships"))
            .order_by("-is_system", "name")
        )
        rows = [
            {"module": module.name, "first": index == 0, "span": len(module.permissions), "code": code,
             "label": label, "cells": [code in role.permission_set for role in roles]}
            for module in modules() for index, (code, label) in enumerate(module.permissions)
        ]
        return super().get_context_data(roles=roles, rows=rows, **kwargs)
