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
from copilot_admin.core.forms import ServiceFormMixin
from copilot_admin.core.sorting import sort_columns, sort_fields, sort_param
from copilot_admin.directory import services
from copilot_admin.directory.forms import (
    AccountNameForm,
    CompanyForm,
    MembershipCreateForm,
    MembershipEditForm,
    MembershipFilterForm,
    StyledPasswordChangeForm,
)
from copilot_admin.directory.login_guard import login_throttle_reset
from copilot_admin.directory.selectors import invitation_resolve, invitation_token, invitations_of_user
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
        return context


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
    """The signed-in user's own account: its name, and its password (the current one first)."""

    permission_required = "authenticated"
    template_name = "tenants/profile.html"

    def get_context_data(self, **kwargs):
        kwargs.setdefault("name_form", AccountNameForm(initial={"full_name": self.request.user.full_name}))
        kwargs.setdefault("password_form", StyledPasswordChangeForm(user=self.request.user))
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
