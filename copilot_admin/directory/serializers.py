"""API representations of tenancy. Relation fields accept only the caller's tenant's objects;
`tenant` is never writable."""

from django.db import models
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from copilot_admin.access.models import SecurityRole
from copilot_admin.core.fields import APIModelSerializer, JSONBooleanField
from tenants.models import ClientCompany, Membership, UserType


class TenantScopedRelatedField(serializers.PrimaryKeyRelatedField):
    """A primary-key relation limited to the requesting membership's tenant."""

    def __init__(self, *, model, **kwargs):
        self.related_model = model
        super().__init__(**kwargs)

    def get_queryset(self):
        membership = self.context.get("membership")
        if membership is None:
            return self.related_model.objects.none()
        return self.related_model.objects.for_tenant(membership.tenant)


class CompanySerializer(APIModelSerializer):
    """A client company. `is_active` false: deactivated (kept with its history, out of every
    member's copilot scope; a call for it is refused `company_inactive`)."""

    is_active = JSONBooleanField(required=False)

    class Meta:
        model = ClientCompany
        fields = ["id", "name", "co_managed", "is_active"]


class MembershipStatus(models.TextChoices):
    INVITED = "invited", "Invited"
    ACTIVE = "active", "Active"
    INACTIVE = "inactive", "Inactive"


def membership_status(membership: Membership) -> str:
    if not membership.is_accepted:
        return MembershipStatus.INVITED
    return MembershipStatus.ACTIVE if membership.is_active else MembershipStatus.INACTIVE


class MembershipSerializer(APIModelSerializer):
    """A user of the tenant. `id` is the membership id. `status` is `invited` until the
    account's owner accepts. `full_name` is the account's own name, shown only once the owner
    accepted (on create it names only an account the invitation creates): an invitation's
    answer is the same whether the address had an account or not."""

    email = serializers.EmailField(source="user.email")
    full_name = serializers.CharField(source="member_name", required=False, allow_blank=True, max_length=150)
    user_type = serializers.ChoiceField(choices=UserType.choices)
    role = TenantScopedRelatedField(model=SecurityRole)
    companies = TenantScopedRelatedField(model=ClientCompany, many=True, required=False)
    is_active = JSONBooleanField(required=False)
    status = serializers.SerializerMethodField()
    created_at = serializers.DateTimeField(read_only=True)

    class Meta:
        model = Membership
        fields = ["id", "email", "full_name", "user_type", "role", "companies", "is_active", "status", "created_at"]

    @extend_schema_field(serializers.ChoiceField(choices=MembershipStatus.choices))
    def get_status(self, membership) -> str:
        return membership_status(membership)


class MembershipUpdateSerializer(MembershipSerializer):
    """A membership's own fields: role, companies, active. E-mail and user type are fixed once
    a user exists; the name belongs to the account's owner."""

    email = serializers.EmailField(source="user.email", read_only=True)
    full_name = serializers.CharField(source="member_name", read_only=True)
    user_type = serializers.ChoiceField(choices=UserType.choices, read_only=True)
    role = TenantScopedRelatedField(model=SecurityRole, required=False)

    def validate(self, attrs):
        if isinstance(self.initial_data, dict) and "full_name" in self.initial_data:
            raise serializers.ValidationError(
                {"full_name": ["The name belongs to the account's owner, who changes it on its profile."]}
            )
        return super().validate(attrs)








