"""python manage.py seed_demo: the demo tenants and accounts of DESIGN.md. Idempotent."""

import os

from django.core.management.base import BaseCommand
from django.db import transaction

from copilot_admin.access.models import SecurityRole
from copilot_admin.access.permissions import FEATURE_GRANTS
from copilot_admin.access.services import roles_seed_system
from copilot_admin.regions.models import DataZone
from tenants import services
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


class Command(BaseCommand):
    help = "Create the demo operator, tenants, companies and users (idempotent). Password: $DEMO_PASSWORD."

    @transaction.atomic
    def handle(self, *args, **options):
        password = os.environ.get("DEMO_PASSWORD", "copilot-demo")
        self._user("operator@platform.example", password, "Pat Operator", is_platform_operator=True)
        for spec in DEMO_TENANTS:
            tenant = self._tenant(spec)
            companies = [
                ClientCompany.objects.for_tenant(tenant).get_or_create(
                    tenant=tenant, name=name, defaults={"co_managed": index == 0}
                )[0]
                for index, name in enumerate(spec["companies"])
            ]
            for local, role_name, user_type, full_name in DEMO_USERS:
                user = self._user(f"{local}@{tenant.slug}.example", password, full_name)
                role = SecurityRole.objects.for_tenant(tenant).get(name=role_name)
                membership, _ = Membership.objects.for_tenant(tenant).get_or_create(
                    tenant=tenant, user=user, defaults={"user_type": user_type, "role": role}
                )
                if user_type == UserType.CO_MANAGED and not membership.companies.exists():
                    membership.companies.set(companies[:1])
        self.stdout.write(self.style.SUCCESS(f"Demo ready: {len(DEMO_TENANTS)} tenants; password from DEMO_PASSWORD."))

    def _user(self, email: str, password: str, full_name: str, **flags) -> User:
        user, created = User.objects.get_or_create(email=email, defaults={"full_name": full_name, **flags})
        if created:
            user.set_password(password)
            user.save()
        return user

    def _tenant(self, spec: dict) -> Tenant:
        tenant = Tenant.objects.filter(slug=spec["slug"]).first()
        if tenant is None:
            tenant = services.tenant_create(
                actor=None, name=spec["name"], slug=spec["slug"], plan=spec["plan"],
                zone=DataZone.objects.get(code=spec["zone"]),
            )
            tenant.copilot_enabled = tenant.plan_includes_copilot
            tenant.feature_switches = {feature: True for feature in FEATURE_GRANTS}
            tenant.save()
        roles_seed_system(tenant=tenant)
        return tenant
