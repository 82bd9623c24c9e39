"""Security roles: a tenant's named sets of permissions from the catalogue."""

from django.db import models

from tenants.models import UserType
from tenants.scoping import TenantOwned


class SecurityRole(TenantOwned):
    """A named set of permission codes for one user type.

    System roles are seeded with the tenant and read-only (clone or deactivate them).
    Co-managed roles never hold admin permissions; services enforce that ceiling.
    """

    name = models.CharField(max_length=80)
    description = models.CharField(max_length=255, blank=True)
    user_type = models.CharField(max_length=12, choices=UserType.choices, default=UserType.INTERNAL)
    permissions = models.JSONField(default=list, blank=True)
    is_system = models.BooleanField(default=False, editable=False)
    is_active = models.BooleanField(default=True)

    class Meta(TenantOwned.Meta):
        ordering = ["-is_system", "name"]
        constraints = [models.UniqueConstraint(fields=["tenant", "name"], name="role_unique_name_per_tenant")]

    def __str__(self) -> str:
        return self.name

    @property
    def permission_set(self) -> frozenset[str]:
        return frozenset(self.permissions)

