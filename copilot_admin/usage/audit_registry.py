"""Registers the limit policies and the abuse rules' models with django-auditlog: every change
of a policy, of a user's copilot access and of an abuse case is recorded with its actor (the
acting user, or none for the system's automatic transitions), and reaches the audit log."""

from auditlog.registry import auditlog

from copilot_admin.usage.models import AbuseCase, CopilotAccess, LimitWarning, PlatformLimitPolicy, TenantLimitPolicy

auditlog.register(PlatformLimitPolicy, exclude_fields=["updated_at"])
auditlog.register(TenantLimitPolicy, exclude_fields=["updated_at"])
auditlog.register(CopilotAccess)
auditlog.register(AbuseCase)
auditlog.register(LimitWarning)
