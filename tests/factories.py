"""Factories for tests: every tenant-owned object is created inside a tenant, and recorded in
its audit log as the demo seed records what it creates (by the system)."""

import factory
from django.utils import timezone

from copilot_admin.access.models import SecurityRole
from copilot_admin.access.services import roles_seed_system
from copilot_admin.audit.services import audit_change_record, audit_m2m_change_record
from copilot_admin.regions.models import DataZone
from tenants.models import ClientCompany, Membership, Plan, Tenant, User, UserType

PASSWORD = "correct-horse-battery-staple"


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = User
        django_get_or_create = ("email",)
        skip_postgeneration_save = True

    email = factory.Sequence(lambda n: f"user{n}@example.test")
    full_name = factory.Faker("name")
    @factory.post_generation
    def password(user, create, extracted, **kwargs):
        user.set_password(extracted or PASSWORD)
        if create:
            user.save(update_fields=["password"])


class TenantFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Tenant
        skip_postgeneration_save = True

    name = factory.Sequence(lambda n: f"Tenant {n}")
    slug = factory.Sequence(lambda n: f"tenant-{n}")
    plan = Plan.ULTIMATE
    zone = factory.LazyFunction(lambda: DataZone.objects.get(code="us"))
    copilot_enabled = True
    feature_switches = factory.LazyFunction(lambda: {"summarize": True, "time-entry": True, "prioritize": True})

    @factory.post_generation
    def system_roles(tenant, create, extracted, **kwargs):
        if create:
            audit_change_record(actor=None, tenant=tenant, instance=tenant)
            roles_seed_system(actor=None, tenant=tenant)


class CompanyFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = ClientCompany
        skip_postgeneration_save = True

    @classmethod
    def _get_manager(cls, model_class):
        # Tests create rows for a given tenant; Django's internal manager accepts that.
        return model_class._default_manager

    tenant = factory.SubFactory(TenantFactory)
    name = factory.Sequence(lambda n: f"Company {n}")
    co_managed = True

    @factory.post_generation
    def recorded(company, create, extracted, **kwargs):
        if create:
            audit_change_record(actor=None, tenant=company.tenant, instance=company)


def role_named(tenant: Tenant, name: str) -> SecurityRole:
    return SecurityRole.objects.for_tenant(tenant).get(name=name)


def add_member(
    tenant: Tenant, role_name: str, *, email: str | None = None, companies=(), accepted: bool = True, **user_fields
) -> Membership:
    """A member of `tenant` with the named role: accepted (in force) unless `accepted=False`
    (a pending invitation)."""
    role = role_named(tenant, role_name)
    user = User.objects.filter(email=email).first() if email else None
    user = user or UserFactory(**({"email": email} if email else {}), **user_fields)
    membership = Membership.objects.for_tenant(tenant).create(
        tenant=tenant, user=user, user_type=role.user_type, role=role,
        accepted_at=timezone.now() if accepted else None,
    )
    audit_change_record(actor=None, tenant=tenant, instance=membership)
    if role.user_type == UserType.CO_MANAGED:
        membership.companies.set(companies)
        audit_m2m_change_record(actor=None, tenant=tenant, instance=membership, field="companies", before=[],
                                after=companies)
    return membership
