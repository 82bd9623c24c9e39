"""Registers tenancy and access models with django-auditlog (field changes with actor)."""

from auditlog.registry import auditlog

from copilot_admin.access.models import SecurityRole
from copilot_admin.regions.models import DataZone
from tenants.models import ClientCompany, Membership, Tenant, User

auditlog.register(Tenant)
auditlog.register(User, exclude_fields=["password", "last_login"])
auditlog.register(ClientCompany)
auditlog.register(Membership, m2m_fields={"companies"})
auditlog.register(SecurityRole)
auditlog.register(DataZone)
