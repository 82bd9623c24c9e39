"""python manage.py seed_demo: the demo tenants and accounts of DESIGN.md. Idempotent; what it
creates or changes is recorded in the audit log with the system as actor."""

import os

from django.conf import settings
from django.core.management.base import BaseCommand
from django.db import transaction
from django.utils import timezone

from copilot_admin.access.models import SecurityRole
from copilot_admin.access.permissions import feature_names
from copilot_admin.access.services import roles_seed_system
from copilot_admin.audit.services import audit_change_record, audit_m2m_change_record, audit_snapshot
from copilot_admin.platform import services
from copilot_admin.regions import services as region_services
from copilot_admin.regions.models import AzureDeployment, DataZone
from copilot_admin.usage.services import platform_policy_ensure
from tenants.models import ClientCompany, Membership, Plan, Tenant, User, UserType

DEMO_TENANTS = [
    {"slug": "northwind", "name": "Northwind Managed IT", "zone": "us", "plan": Plan.ULTIMATE,
     "companies": ["Alpine Ski House", "Blue Yonder Airlines", "Coho Winery"]},
    {"slug": "contoso", "name": "Contoso Services", "zone": "eu", "plan": Plan.ITSM_COPILOT,
     "companies": ["Litware GmbH", "Margie's Travel", "Trey Research"]},
    {"slug": "fabrikam", "name": "Fabrikam Support", "zone": "us", "plan": Plan.ITSM,
     "companies": ["Wide World Importers", "Tailspin Toys"]},
]
DEMO_USERS = [
    ("admin", "Tenant Administrator", UserType.INTERNAL, "Avery Admin"),
    ("tech", "Technician", UserType.INTERNAL, "Taylor Tech"),
    ("comanaged", "Co-managed Help Desk", UserType.CO_MANAGED, "Casey Comanaged"),
    ("auditor", "Compliance Auditor", UserType.INTERNAL, "Alex Auditor"),
]
# Demo deployments: the built-in simulator (settings.COPILOT_SIMULATOR) behind every zone; two
# in us so that failover can be seen ([[sim:503]] in a ticket fails the first one).
DEMO_DEPLOYMENTS = [
    {"zone": "us", "name": "us-simulator-1", "deployment": "gpt-4o-us-1", "priority": 10},
    {"zone": "us", "name": "us-simulator-2", "deployment": "gpt-4o-us-2", "priority": 20},
    {"zone": "eu", "name": "eu-simulator-1", "deployment": "gpt-4o-eu-1", "priority": 10},
]


class Command(BaseCommand):
    help = "Create the demo operator, tenants, companies and users (idempotent). Password: $DEMO_PASSWORD."

    @transaction.atomic
    def handle(self, *args, **options):
        password = os.environ.get("DEMO_PASSWORD", "copilot-demo")
        self._user("operator@platform.example", password, "Pat Operator", is_platform_operator=True)
        for spec in DEMO_TENANTS:
            tenant = self._tenant(spec)
            companies = [self._company(tenant, name, co_managed=index == 0) for index, name in enumerate(spec["companies"])]
            for local, role_name, user_type, full_name in DEMO_USERS:
                user = self._user(f"{local}@{tenant.slug}.example", password, full_name)
                role = SecurityRole.objects.for_tenant(tenant).get(name=role_name)
                membership, created = Membership.objects.for_tenant(tenant).get_or_create(
                    tenant=tenant, user=user, defaults={"user_type": user_type, "role": role, "accepted_at": timezone.now()}
                )
                if created:
                    audit_change_record(actor=None, tenant=tenant, instance=membership)
                if user_type == UserType.CO_MANAGED and not membership.companies.exists():
                    membership.companies.set(companies[:1])
                    audit_m2m_change_record(actor=None, tenant=tenant, instance=membership, field="companies",
                                            before=[], after=companies[:1])
        platform_policy_ensure()  # the default usage limits and abuse rules, editable at /platform/limits/
        if settings.COPILOT_SIMULATOR:
            self._deployments()
        self.stdout.write(self.style.SUCCESS(f"Demo ready: {len(DEMO_TENANTS)} tenants; password from DEMO_PASSWORD."))

    def _company(self, tenant: Tenant, name: str, *, co_managed: bool) -> ClientCompany:
        company, created = ClientCompany.objects.for_tenant(tenant).get_or_create(
            tenant=tenant, name=name, defaults={"co_managed": co_managed}
        )
        if created:
            audit_change_record(actor=None, tenant=tenant, instance=company)
        return company

    def _user(self, email: str, password: str, full_name: str, **flags) -> User:
        user, created = User.objects.get_or_create(email=email, defaults={"full_name": full_name, **flags})
        if created:
            user.set_password(password)
            user.save()
            audit_change_record(actor=None, tenant=None, instance=user)  # an account: the platform log
        return user

    def _tenant(self, spec: dict) -> Tenant:
        tenant = Tenant.objects.filter(slug=spec["slug"]).first()
        if tenant is None:
            tenant = services.tenant_create(
                actor=None, name=spec["name"], slug=spec["slug"], plan=spec["plan"],
                zone=DataZone.objects.get(code=spec["zone"]),
            )
            before = audit_snapshot(tenant)
            tenant.copilot_enabled = tenant.plan_includes_copilot
            tenant.feature_switches = {feature: True for feature in feature_names()}
            tenant.save()
            audit_change_record(actor=None, tenant=tenant, instance=tenant, before=before)
        roles_seed_system(actor=None, tenant=tenant)
        return tenant

    def _deployments(self) -> None:
        for spec in DEMO_DEPLOYMENTS:
            if AzureDeployment.objects.filter(name=spec["name"]).exists():
                continue
            region_services.deployment_create(
                actor=None, zone=DataZone.objects.get(code=spec["zone"]), name=spec["name"],
                endpoint=settings.COPILOT_SIMULATOR_URL, deployment=spec["deployment"], api_version="2024-10-21",
                auth_mode="api_key", api_key_env="AZURE_OPENAI_KEY_SIMULATOR", priority=spec["priority"],
            )
