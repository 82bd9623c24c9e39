"""Tenant API: users, client companies, copilot settings. Thin adapters over services."""

from django_filters import rest_framework as filters
from rest_framework import mixins

from copilot_admin.access.base_api import TenantViewSet
from copilot_admin.access.permissions import ANY_MEMBER, Perm
from copilot_admin.core.filters import IdFilter, StrictBooleanFilter, StrictFilterSet
from copilot_admin.directory import services
from copilot_admin.directory.serializers import (
    CompanySerializer,
    MembershipSerializer,
    MembershipUpdateSerializer,
)
from tenants.models import ClientCompany, Membership, UserType
from tenants.selectors import companies_in_scope


class MembershipFilter(StrictFilterSet):
    user_type = filters.ChoiceFilter(choices=UserType.choices)
    role = IdFilter(field_name="role_id")
    is_active = StrictBooleanFilter()
    email = filters.CharFilter(field_name="user__email", lookup_expr="icontains")

    class Meta:
        model = Membership
        fields = ["user_type", "role", "is_active", "email"]


class UserViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.CreateModelMixin,
                  mixins.UpdateModelMixin, TenantViewSet):
    """Users of the tenant (memberships). POST invites an e-mail address (`status` invited
    until its owner accepts); PATCH changes the membership only (role, companies,
    is_active=false deactivates)."""

    model = Membership
    permissions = {
        "list": Perm.USERS, "retrieve": Perm.USERS, "create": Perm.USERS,
        "update": Perm.USERS, "partial_update": Perm.USERS,
    }
    # Auditors read the directory (read-only).
    alternatives = {"list": Perm.DIRECTORY_VIEW, "retrieve": Perm.DIRECTORY_VIEW}
    filterset_class = MembershipFilter
    http_method_names = ["get", "post", "patch", "head", "options"]

    def narrow_queryset(self, queryset):
        return queryset.select_related("user", "role").prefetch_related("companies").order_by("user__email")

    def get_serializer_class(self):
        if self.action in ("update", "partial_update"):
            return MembershipUpdateSerializer
        return MembershipSerializer

    def perform_create(self, serializer):
        data = serializer.validated_data
        serializer.instance = services.membership_create(
            actor=self.membership,
            tenant=self.tenant,
            email=data["user"]["email"],
            full_name=data.get("member_name", ""),
            user_type=data["user_type"],
            role=data["role"],
            companies=data.get("companies", []),
        )

    def perform_update(self, serializer):
        data = dict(serializer.validated_data)
        serializer.instance = services.membership_update(actor=self.membership, membership=serializer.instance, **data)


class CompanyFilter(StrictFilterSet):
    co_managed = StrictBooleanFilter()
    is_active = StrictBooleanFilter()

    class Meta:
        model = ClientCompany
        fields = ["co_managed", "is_active"]


class CompanyViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.CreateModelMixin,
                     mixins.UpdateModelMixin, mixins.DestroyModelMixin, TenantViewSet):
    """Client companies. Every member lists the companies in its scope (deactivated ones too,
    `is_active` false). PATCH `is_active` deactivates or reactivates; DELETE removes a company
    nothing refers to (204), else 409 `company_in_use` (deactivate it instead)."""

    model = ClientCompany
    serializer_class = CompanySerializer
    permissions = {
        "list": ANY_MEMBER, "retrieve": ANY_MEMBER, "create": Perm.COMPANIES,
        "update": Perm.COMPANIES, "partial_update": Perm.COMPANIES, "destroy": Perm.COMPANIES,
    }
    filterset_class = CompanyFilter
    http_method_names = ["get", "post", "patch", "delete", "head", "options"]

    def narrow_queryset(self, queryset):
        return queryset & companies_in_scope(membership=self.membership)

    def perform_create(self, serializer):
        serializer.instance = services.company_create(actor=self.membership, **serializer.validated_data)

    def perform_update(self, serializer):
        serializer.instance = services.company_update(
            actor=self.membership, company=serializer.instance, **serializer.validated_data
        )

    def perform_destroy(self, instance):
        services.company_delete(actor=self.membership, company=instance)


