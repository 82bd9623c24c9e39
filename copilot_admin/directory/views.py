"""Tenant pages: overview, users, client companies, copilot settings, login security."""

from axes.models import AccessAttempt
from axes.utils import reset as axes_reset
from django.conf import settings
from django.contrib import messages
from django.contrib.auth import update_session_auth_hash
from django.contrib.auth.mixins import LoginRequiredMixin
from django.contrib.auth.views import PasswordResetConfirmView
from django.db import transaction
from django.db.models import Count, Max, Q, Sum
from django.http import Http404
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.generic import FormView, TemplateView

from copilot_admin.access.base_views import TenantListView, TenantObjectMixin, TenantPageMixin
from copilot_admin.access.member_badges import member_badges
from copilot_admin.access.models import SecurityRole
from copilot_admin.access.permissions import ANY_MEMBER, Perm, feature_grants
from copilot_admin.access.setup_checks import setup_checklist
from copilot_admin.core.errors import ApplicationError
from copilot_admin.core.forms import ServiceFormMixin, posted_id
from copilot_admin.core.humanize import counted
from copilot_admin.core.sorting import sort_columns, sort_fields, sort_param
from copilot_admin.directory import services
from copilot_admin.directory.forms import (
    AccountNameForm,
    AccountTimeZoneForm,
    CompanyForm,
    MembershipCreateForm,
    MembershipEditForm,
    MembershipFilterForm,
    StyledPasswordChangeForm,
)
from copilot_admin.directory.login_guard import login_throttle_reset
from copilot_admin.directory.selectors import (
    company_co_managers,
    company_removal_blockers,
    invitation_resolve,
    invitation_token,
    invitations_of_user,
)
from copilot_admin.directory.services import BULK_LIMIT, BulkAction
from tenants.models import ClientCompany, Membership
from tenants.selectors import companies_in_scope, memberships_of_user


class HomeView(LoginRequiredMixin, TemplateView):
    """Where a login lands: the only tenant, a tenant picker, or the platform console."""

    permission_required = "authenticated"
    template_name = "tenants/home.html"

    def get(self, request, *args, **kwargs):
        memberships = list(memberships_of_user(user=request.user))
        operator = request.user.is_platform_operator
        invitations = [] if operator else [
            (invitation, invitation_token(membership=invitation)) for invitation in invitations_of_user(user=request.user)
        ]
        if len(memberships) == 1 and not operator and not invitations:
            return redirect("directory:overview", tenant_slug=memberships[0].tenant.slug)
        if not memberships and operator:
            return redirect("platform:tenants")
        return render(request, self.template_name, {"memberships": memberships, "invitations": invitations})


class OverviewView(TenantPageMixin, TemplateView):
    """The tenant's front page: plan, zone, people, copilot switches and, for those who manage
    users, the setup checklist. A platform operator (never a member) is sent to the tenant's
    page in the console, which shows the same checklist read-only."""

    permission_required = ANY_MEMBER
    template_name = "tenants/overview.html"
    operator_console_page = "platform:tenant_overview"

    def get_context_data(self, **kwargs):
        members = Membership.objects.for_tenant(self.tenant).aggregate(
            total=Count("id"),
            active=Count("id", filter=Q(is_active=True, accepted_at__isnull=False)),
            invited=Count("id", filter=Q(accepted_at__isnull=True)),
            co_managed=Count("id", filter=Q(user_type="co_managed")),
        )
        return super().get_context_data(
            members=members,
            companies=companies_in_scope(membership=self.membership).count(),
            roles=SecurityRole.objects.for_tenant(self.tenant).filter(is_active=True).count(),
            checklist=setup_checklist(tenant=self.tenant) if Perm.USERS in self.request.permissions else None,
            features=[
                (grant.label, self.tenant.feature_enabled(grant.feature), grant.code in self.request.permissions)
                for grant in feature_grants()
            ],
            **kwargs,
        )


class UserListView(TenantListView):
    permission_required = Perm.USERS
    read_permission = Perm.DIRECTORY_VIEW
    model = Membership
    template_name = "tenants/user_list.html"

    # ?sort=<key> (or -<key>): the columns a list can be sorted by; anything else sorts by e-mail.
    SORTS = {
        "email": ("user__email",), "name": ("user__full_name", "user__email"), "type": ("user_type", "user__email"),
        "role": ("role__name", "user__email"), "status": ("accepted_at", "is_active", "user__email"),
    }
    COLUMNS = {"name": "Name", "email": "E-mail", "type": "Type", "role": "Security role", "status": "Status"}

    def narrow_queryset(self, queryset):
        self.filter_form = MembershipFilterForm(self.request.GET or None, tenant=self.tenant)
        self.sort = sort_param(self.request, self.SORTS, default="email")
        queryset = queryset.select_related("user", "role").prefetch_related("companies").order_by(
            *sort_fields(self.SORTS, self.sort))
        if self.filter_form.is_valid():
            data = self.filter_form.cleaned_data
            if data["user_type"]:
                queryset = queryset.filter(user_type=data["user_type"])
            if data["role"]:
                queryset = queryset.filter(role=data["role"])
            if data["is_active"]:
                queryset = queryset.filter(is_active=data["is_active"] == "1")
            if data["q"]:
                # A name is searched only where the tenant sees it: accepted members.
                queryset = queryset.filter(
                    Q(user__email__icontains=data["q"]) | Q(user__full_name__icontains=data["q"], accepted_at__isnull=False)
                )
        return queryset

    def get_context_data(self, **kwargs):
        context = super().get_context_data(filter_form=self.filter_form, **kwargs)
        badges = member_badges(tenant=self.tenant, memberships=context["object_list"])
        for membership in context["object_list"]:
            membership.badges = badges.get(membership.pk, [])
        context["sort_columns"] = sort_columns(self.request, self.COLUMNS, self.sort)
        # Bulk selection without JavaScript: "select all on this page" reloads the list with
        # every box ticked; static/js/bulk_select.js does the same in place.
        context["select_all"] = self.request.GET.get("select") == "page"
        context["bulk_limit"] = BULK_LIMIT
        context["selected_ids"] = set(_ids_of(self.request.GET))
        context["keep_query"] = [(key, value) for key, values in self.request.GET.lists()
                                 if key not in ("ids", "select", "role") for value in values]
        context["bulk_roles"] = SecurityRole.objects.for_tenant(self.tenant).filter(is_active=True).order_by("name")
        return context


def _ids_of(data) -> list[int]:
    """The membership ids a bulk form sent (`ids`, repeated); anything but a plain number is dropped."""
    return [pk for pk in map(posted_id, data.getlist("ids")) if pk is not None]


class UserCreateView(ServiceFormMixin, TenantPageMixin, FormView):
    permission_required = Perm.USERS
    form_class = MembershipCreateForm
    template_name = "tenants/user_form.html"

    def get_form_kwargs(self):
        return {**super().get_form_kwargs(), "tenant": self.tenant}

    def perform(self, form) -> str:
        membership = services.membership_create(actor=self.membership, tenant=self.tenant, **form.cleaned_data)
        # The same words whether the address had an account or not: the admin learns nothing of it.
        return f"{membership.user.email} was invited; the invitation e-mail is on its way."

    def get_success_url(self):
        return reverse("directory:users", kwargs={"tenant_slug": self.tenant.slug})


class UserEditView(ServiceFormMixin, TenantObjectMixin, FormView):
    permission_required = Perm.USERS
    read_permission = Perm.DIRECTORY_VIEW
    model = Membership
    form_class = MembershipEditForm
    template_name = "tenants/user_form.html"

    def narrow_queryset(self, queryset):
        return queryset.select_related("user", "role")

    def get_form_kwargs(self):
        kwargs = {**super().get_form_kwargs(), "tenant": self.tenant}
        if self.request.method == "GET":
            kwargs["initial"] = {
                "role": self.object.role,
                "companies": list(self.object.companies.all()),
                "is_active": self.object.is_active,
            }
        return kwargs

    def get_context_data(self, **kwargs):
        badges = member_badges(tenant=self.tenant, memberships=[self.object]).get(self.object.pk, [])
        return super().get_context_data(object=self.object, badges=badges, **kwargs)

    def post(self, request, *args, **kwargs):
        if request.POST.get("action") != "resend":
            return super().post(request, *args, **kwargs)
        try:
            services.invitation_resend(actor=self.membership, membership=self.object)
        except ApplicationError as error:
            messages.error(request, error.message)
        else:
            messages.success(request, f"The invitation to {self.object.user.email} was sent again.")
        return redirect(self.get_success_url())

    def perform(self, form) -> str:
        changes = dict(form.cleaned_data)
        # Deactivating cannot be undone by accident: it waits for its own confirmation page.
        self.deactivation_asked = self.object.is_active and not changes.get("is_active", True)
        if self.deactivation_asked:
            changes.pop("is_active")
        services.membership_update(actor=self.membership, membership=self.object, **changes)
        if self.deactivation_asked:
            return f"{self.object.user.email} was updated; confirm the deactivation below."
        return f"{self.object.user.email} was updated."

    def get_success_url(self):
        if getattr(self, "deactivation_asked", False):
            return reverse("directory:user_deactivate", kwargs={"tenant_slug": self.tenant.slug, "pk": self.object.pk})
        return reverse("directory:users", kwargs={"tenant_slug": self.tenant.slug})


class UserDeactivateView(TenantObjectMixin, TemplateView):
    """Confirm deactivating a user (GET: what follows; POST: do it). Works without JavaScript."""

    permission_required = Perm.USERS
    model = Membership
    template_name = "confirm.html"

    def narrow_queryset(self, queryset):
        return queryset.select_related("user", "role").filter(accepted_at__isnull=False, is_active=True)

    def get_context_data(self, **kwargs):
        email = self.object.user.email
        return super().get_context_data(
            title=f"Deactivate {email}?",
            consequences=[
                f"{email} loses access to {self.tenant.name} at once: its pages, the API and the copilot.",
                "Its login sessions and API tokens issued before now never reach this tenant again, "
                "also after a later re-activation.",
                "Its usage and audit history stay.",
            ],
            confirm_label="Deactivate",
            cancel_url=reverse("directory:user_edit", kwargs={"tenant_slug": self.tenant.slug, "pk": self.object.pk}),
            **kwargs,
        )

    def post(self, request, *args, **kwargs):
        try:
            services.membership_update(actor=self.membership, membership=self.object, is_active=False)
        except ApplicationError as error:
            messages.error(request, error.message)
            return redirect("directory:user_edit", tenant_slug=self.tenant.slug, pk=self.object.pk)
        messages.success(request, f"{self.object.user.email} was deactivated.")
        return redirect("directory:users", tenant_slug=self.tenant.slug)


class UserRevokeView(TenantObjectMixin, TemplateView):
    """Confirm withdrawing a pending invitation (GET: what follows; POST: do it)."""

    permission_required = Perm.USERS
    model = Membership
    template_name = "confirm.html"

    def narrow_queryset(self, queryset):
        return queryset.select_related("user", "role").filter(accepted_at__isnull=True)

    def get_context_data(self, **kwargs):
        email = self.object.user.email
        return super().get_context_data(
            title=f"Revoke the invitation of {email}?",
            consequences=[
                f"The invitation links sent to {email} stop working.",
                f"{email} disappears from the users of {self.tenant.name}; you can invite the address again later.",
            ],
            confirm_label="Revoke invitation",
            cancel_url=reverse("directory:user_edit", kwargs={"tenant_slug": self.tenant.slug, "pk": self.object.pk}),
            **kwargs,
        )

    def post(self, request, *args, **kwargs):
        try:
            services.invitation_revoke(actor=self.membership, membership=self.object)
        except ApplicationError as error:
            messages.error(request, error.message)
            return redirect("directory:user_edit", tenant_slug=self.tenant.slug, pk=self.object.pk)
        messages.success(request, f"The invitation of {self.object.user.email} was revoked.")
        return redirect("directory:users", tenant_slug=self.tenant.slug)


class UserBulkView(TenantPageMixin, TemplateView):
    """Confirm one action on the users ticked in the list (GET: how many and what follows;
    POST: do it, all or nothing, through `membership_bulk_apply`). Works without JavaScript.
    An id that is not a user of this tenant makes the page 404."""

    permission_required = Perm.USERS
    template_name = "tenants/user_bulk_confirm.html"
    action: str = ""

    TITLES = {
        BulkAction.DEACTIVATE: "Deactivate {count}?",
        BulkAction.ROLE: "Change the role of {count}?",
        BulkAction.RESEND: "Re-send the invitation to {count}?",
        BulkAction.REVOKE: "Revoke the invitation of {count}?",
    }
    DONE = {
        BulkAction.DEACTIVATE: "{count} deactivated.",
        BulkAction.ROLE: "{count} now {hold} the role {role}.",
        BulkAction.RESEND: "The invitation was sent again to {count}.",
        BulkAction.REVOKE: "The invitation of {count} was revoked.",
    }

    def prepare(self) -> None:
        data = self.request.POST if self.request.method == "POST" else self.request.GET
        self.ids = list(dict.fromkeys(_ids_of(data)))
        self.memberships = []
        if self.ids and len(self.ids) <= BULK_LIMIT:
            self.memberships = list(Membership.objects.for_tenant(self.tenant).select_related("user", "role")
                                    .filter(pk__in=self.ids).order_by("user__email"))
            if len(self.memberships) != len(self.ids):
                raise Http404("Not found.")
        role_id = posted_id(data.get("role"))
        self.role = (SecurityRole.objects.for_tenant(self.tenant).filter(pk=role_id, is_active=True).first()
                     if role_id is not None else None)

    @staticmethod
    def _users(count: int) -> str:
        return counted(count, "user", "users")

    def consequences(self) -> list[str]:
        users, tenant, one = self._users(len(self.ids)), self.tenant.name, len(self.ids) == 1
        lose, get = ("loses", "gets") if one else ("lose", "get")
        if self.action == BulkAction.DEACTIVATE:
            return [f"{users} {lose} access to {tenant} at once: its pages, the API and the copilot.",
                    ("Their login sessions and API tokens issued before now never reach this tenant again, "
                     "also after a later re-activation."),
                    "Their usage and audit history stay."]
        if self.action == BulkAction.ROLE:
            role = f"the role {self.role.name}" if self.role else "the role chosen below"
            return [(f"{users} {get} {role}: what it grants replaces what their current roles grant, "
                     "on their next request."),
                    "Users of another user type than the role's, or holding more than you may grant, are refused."]
        if self.action == BulkAction.RESEND:
            return [f"{users} {get} the invitation e-mail again, each with a fresh link."]
        return [f"The invitation links sent to {users} stop working.",
                f"They disappear from the users of {tenant}; you can invite the addresses again later."]

    def blockers(self) -> list[str]:
        if not self.ids:
            return ["No users were selected: tick them in the users list first."]
        if len(self.ids) > BULK_LIMIT:
            return [f"At most {BULK_LIMIT} users can be changed at once; {len(self.ids)} were selected."]
        return []

    def get_context_data(self, **kwargs):
        blockers = kwargs.pop("blockers", None) or self.blockers()
        return super().get_context_data(
            title=self.TITLES[self.action].format(count=self._users(len(self.ids))),
            action=self.action, blockers=blockers, consequences=self.consequences(), memberships=self.memberships,
            ids=self.ids, role=self.role, limit=BULK_LIMIT,
            roles=SecurityRole.objects.for_tenant(self.tenant).filter(is_active=True).order_by("name")
            if self.action == BulkAction.ROLE else (),
            confirm_label=dict(BulkAction.choices)[self.action],
            cancel_url=reverse("directory:users", kwargs={"tenant_slug": self.tenant.slug}),
            **kwargs,
        )

    def post(self, request, *args, **kwargs):
        try:
            services.membership_bulk_apply(actor=self.membership, membership_ids=self.ids, action=self.action,
                                           role=self.role)
        except ApplicationError as error:
            # Nothing was changed: the same page again, saying why.
            lines = [error.message] if not isinstance(error.fields, dict) or error.code != "bulk_refused" else [
                "Nothing was changed; these users cannot be changed this way:",
                *(f"{email}: {' '.join(reasons)}" for email, reasons in error.fields.items())]
            return self.render_to_response(self.get_context_data(blockers=lines), status=error.status_code)
        messages.success(request, self.DONE[self.action].format(
            count=self._users(len(self.ids)), hold="holds" if len(self.ids) == 1 else "hold",
            role=self.role.name if self.role else ""))
        return redirect("directory:users", tenant_slug=self.tenant.slug)


class CompanyListView(TenantListView):
    """Every member sees the companies in its scope; administrators manage them."""

    permission_required = ANY_MEMBER
    model = ClientCompany
    template_name = "tenants/company_list.html"

    def narrow_queryset(self, queryset):
        scope = companies_in_scope(membership=self.membership)
        return scope.annotate(co_manager_count=Count("co_managers")).order_by("name")


class CompanyCreateView(ServiceFormMixin, TenantPageMixin, FormView):
    permission_required = Perm.COMPANIES
    form_class = CompanyForm
    template_name = "tenants/company_form.html"

    def perform(self, form) -> str:
        company = services.company_create(actor=self.membership, **form.cleaned_data)
        return f"{company.name} was added."

    def get_success_url(self):
        return reverse("directory:companies", kwargs={"tenant_slug": self.tenant.slug})


class CompanyEditView(ServiceFormMixin, TenantObjectMixin, FormView):
    permission_required = Perm.COMPANIES
    read_permission = Perm.DIRECTORY_VIEW
    model = ClientCompany
    form_class = CompanyForm
    template_name = "tenants/company_form.html"

    def get_initial(self):
        return {"name": self.object.name, "co_managed": self.object.co_managed}

    def get_context_data(self, **kwargs):
        return super().get_context_data(object=self.object, **kwargs)

    def perform(self, form) -> str:
        company = services.company_update(actor=self.membership, company=self.object, **form.cleaned_data)
        return f"{company.name} was saved."

    def get_success_url(self):
        return reverse("directory:companies", kwargs={"tenant_slug": self.tenant.slug})


class _CompanyConfirmView(TenantObjectMixin, TemplateView):
    """A confirmation page of a company action (GET: what follows; POST: do it). Works without
    JavaScript; a refusal comes back as a sentence on the company's page."""

    permission_required = Perm.COMPANIES
    model = ClientCompany
    template_name = "confirm.html"
    confirm_label = ""
    done = ""

    def consequences(self) -> list[str]:
        raise NotImplementedError

    def blockers(self) -> list[str]:
        return []

    def perform(self) -> None:
        raise NotImplementedError

    def get_context_data(self, **kwargs):
        return super().get_context_data(
            title=f"{self.confirm_label} {self.object.name}?", consequences=self.consequences(),
            blockers=self.blockers(), confirm_label=self.confirm_label,
            cancel_url=reverse("directory:company_edit", kwargs={"tenant_slug": self.tenant.slug, "pk": self.object.pk}),
            **kwargs,
        )

    def post(self, request, *args, **kwargs):
        try:
            self.perform()
        except ApplicationError as error:
            messages.error(request, error.message)
            return redirect("directory:company_edit", tenant_slug=self.tenant.slug, pk=self.object.pk)
        messages.success(request, self.done.format(name=self.object.name))
        return redirect("directory:companies", tenant_slug=self.tenant.slug)


def _co_managed_users(count: int) -> str:
    return counted(count, "co-managed user", "co-managed users")


class CompanyDeactivateView(_CompanyConfirmView):
    confirm_label = "Deactivate"
    done = "{name} was deactivated."

    def narrow_queryset(self, queryset):
        return queryset.filter(is_active=True)

    def consequences(self) -> list[str]:
        bound, stranded = company_co_managers(company=self.object)
        lines = [(f"Nobody can use the copilot on {self.object.name}'s tickets any more, internal users included: "
                  "calls naming it are refused.")]
        if bound:
            loses = "loses" if bound == 1 else "lose"
            lines.append(f"{_co_managed_users(bound)} {loses} {self.object.name} from their scope"
                         + (f"; {stranded} of them co-manage no other active company and can no longer use "
                            "the copilot at all." if stranded else "."))
        else:
            lines.append("No co-managed user is bound to it.")
        lines.append("Its usage records and audit history are kept; you can reactivate it later.")
        return lines

    def perform(self) -> None:
        services.company_update(actor=self.membership, company=self.object, is_active=False)


class CompanyReactivateView(_CompanyConfirmView):
    confirm_label = "Reactivate"
    done = "{name} was reactivated."

    def narrow_queryset(self, queryset):
        return queryset.filter(is_active=False)

    def consequences(self) -> list[str]:
        bound, _ = company_co_managers(company=self.object)
        return [f"The copilot can be used on {self.object.name}'s tickets again, on the next call."
                + (f" {_co_managed_users(bound)} bound to it {'gets' if bound == 1 else 'get'} it back in their scope."
                   if bound else "")]

    def perform(self) -> None:
        services.company_update(actor=self.membership, company=self.object, is_active=True)


class CompanyDeleteView(_CompanyConfirmView):
    confirm_label = "Delete"
    done = "{name} was deleted."

    def blockers(self) -> list[str]:
        return company_removal_blockers(company=self.object)

    def consequences(self) -> list[str]:
        return [(f"{self.object.name} is removed for good: no co-managed user is bound to it and no usage "
                 "record names it."), "Its audit history stays."]

    def perform(self) -> None:
        services.company_delete(actor=self.membership, company=self.object)


class LoginSecurityView(TenantPageMixin, TemplateView):
    """Failed logins and lockouts of this tenant's users; an administrator can lift a lockout."""

    permission_required = Perm.USERS
    template_name = "tenants/login_security.html"

    def _emails(self):
        # Only accounts that accepted and are active here: an invited or deactivated account's
        # logins are none of this tenant's business.
        return Membership.objects.for_tenant(self.tenant).granting_access().values_list("user__email", flat=True)

    def _attempts(self):
        return AccessAttempt.objects.filter(username__in=self._emails()).order_by("-attempt_time")

    def get_context_data(self, **kwargs):
        locked_since = timezone.now() - settings.AXES_COOLOFF_TIME
        accounts = (
            self._attempts()
            .values("username")
            .annotate(failures=Sum("failures_since_start"), addresses=Count("ip_address", distinct=True),
                      last_attempt=Max("attempt_time"))
            .order_by("-last_attempt")[:200]
        )
        # A lockout is per (account, address): the account shows as locked while any of its addresses is.
        locked_accounts = set(
            self._attempts()
            .filter(failures_since_start__gte=settings.AXES_FAILURE_LIMIT, attempt_time__gt=locked_since)
            .values_list("username", flat=True)
        )
        for account in accounts:
            account["locked"] = account["username"] in locked_accounts
        return super().get_context_data(accounts=accounts, failure_limit=settings.AXES_FAILURE_LIMIT, **kwargs)

    def post(self, request, *args, **kwargs):
        email = request.POST.get("username", "")
        if not self._emails().filter(user__email=email).exists():
            raise Http404("Not found.")
        if self._attempts().filter(username=email).exists():
            axes_reset(username=email)
            login_throttle_reset(email)
            messages.success(request, f"The lockout of {email} was lifted.")
        return redirect(reverse("directory:login_security", kwargs={"tenant_slug": self.tenant.slug}))


# -- the account's owner: invitations, profile, first password --------------------------------


class InvitationAcceptView(LoginRequiredMixin, TemplateView):
    """The accept page of an invitation link. Only the invited account's owner, signed in as
    themselves, can accept; anyone else is asked to sign in as the invited account (which is
    not named). Platform operator accounts cannot join tenants."""

    permission_required = "authenticated"
    template_name = "tenants/invitation_accept.html"

    def _state(self, membership) -> tuple[str, int]:
        if membership is None:
            return "invalid", 404
        if membership.user_id != self.request.user.pk:
            return "other_account", 403
        if self.request.user.is_platform_operator:
            return "operator", 403
        return "ready", 200

    def get(self, request, *args, **kwargs):
        membership = invitation_resolve(token=kwargs["token"])
        state, status = self._state(membership)
        context = self.get_context_data(state=state, invitation=membership if state == "ready" else None)
        return self.render_to_response(context, status=status)

    def post(self, request, *args, **kwargs):
        membership = invitation_resolve(token=kwargs["token"])
        state, status = self._state(membership)
        if state != "ready":
            return self.render_to_response(self.get_context_data(state=state, invitation=None), status=status)
        try:
            membership = services.membership_accept(user=request.user, membership=membership)
        except ApplicationError as error:
            messages.error(request, error.message)
            return redirect("home")
        messages.success(request, f"You joined {membership.tenant.name}.")
        return redirect("directory:overview", tenant_slug=membership.tenant.slug)


class ProfileView(LoginRequiredMixin, TemplateView):
    """The signed-in user's own account: its name, its password (the current one first), and
    the time zone its pages show times in."""

    permission_required = "authenticated"
    template_name = "tenants/profile.html"

    def get_context_data(self, **kwargs):
        kwargs.setdefault("name_form", AccountNameForm(initial={"full_name": self.request.user.full_name}))
        kwargs.setdefault("password_form", StyledPasswordChangeForm(user=self.request.user))
        kwargs.setdefault("time_zone_form", AccountTimeZoneForm(initial={"time_zone": self.request.user.time_zone or "UTC"}))
        return super().get_context_data(**kwargs)

    def post(self, request, *args, **kwargs):
        if request.POST.get("action") == "password":
            form = StyledPasswordChangeForm(user=request.user, data=request.POST)
            if not form.is_valid():
                return self.render_to_response(self.get_context_data(password_form=form), status=400)
            with transaction.atomic():
                user = form.save()
                services.account_password_changed(user=user, request=request)
            update_session_auth_hash(request, user)
            messages.success(request, "Your password was changed; your API tokens were ended.")
            return redirect("profile")
        if request.POST.get("action") == "time_zone":
            form = AccountTimeZoneForm(data=request.POST)
            if not form.is_valid():
                return self.render_to_response(self.get_context_data(time_zone_form=form), status=400)
            user = services.account_time_zone_update(
                actor=request.user, user=request.user, time_zone=form.cleaned_data["time_zone"])
            messages.success(request, f"Pages now show times in {user.time_zone or 'UTC'}.")
            return redirect("profile")
        form = AccountNameForm(data=request.POST)
        if not form.is_valid():
            return self.render_to_response(self.get_context_data(name_form=form), status=400)
        services.account_update(actor=request.user, user=request.user, full_name=form.cleaned_data["full_name"])
        messages.success(request, "Your name was saved.")
        return redirect("profile")


class PasswordSetView(PasswordResetConfirmView):
    """The invitation link of an account the invitation created: setting the password is
    the owner's acceptance of that invitation."""

    template_name = "registration/password_set.html"
    success_url = "/login/"
    post_reset_login = False

    def form_valid(self, form):
        with transaction.atomic():
            response = super().form_valid(form)
            services.membership_accept_created_account(user=form.user)
        return response
