"""Registers tenancy and access models with django-auditlog (field changes with actor)."""

from auditlog.registry import auditlog

from copilot_admin.access.models import SecurityRole
from copilot_admin.regions.models import DataZone
from tenants.models import ClientCompany, Membership, Tenant, User

auditlog.register(Tenant)
auditlog.register(User, exclude_fields=["password", "last_login"])
auditlog.register(ClientCompany)
# Whether an invited address had an account is not the inviting tenant's to read: neither
# `created_account` nor the account's id (its age) is logged; an entry names the membership by
# its user's e-mail (its repr), and a membership's user never changes.
auditlog.register(Membership, m2m_fields={"companies"}, exclude_fields=["created_account", "user"])
auditlog.register(SecurityRole)
auditlog.register(DataZone)
