"""Fail-closed tenant scoping for tenant-owned models.

`Model.objects` cannot be read without naming a tenant: `all()`, `filter()`, `get()` and
every other queryset method raise `TenantScopeRequired`. Application code reads through
`Model.objects.for_tenant(tenant)`. The escape hatch is `Model.objects.unscoped()`; every
call site says why in a comment (tests/test_scoping.py lists the allowed places).

Django's own machinery (unique validation, related managers, deletion) uses the model's
default manager, `unscoped_objects`, which application code must not use either.
"""

from django.db import models


class TenantScopeRequired(RuntimeError):
    """A tenant-owned model was queried without naming the tenant."""


class TenantScopedManager(models.Manager):
    """`objects` of a tenant-owned model: every read names its tenant."""

    def get_queryset(self):
        raise TenantScopeRequired(
            f"{self.model.__name__}.objects must be read through for_tenant(tenant) or unscoped()."
        )

    def for_tenant(self, tenant) -> models.QuerySet:
        if tenant is None or getattr(tenant, "pk", None) is None:
            raise TenantScopeRequired(f"{self.model.__name__}.objects.for_tenant() needs a saved tenant.")
        return super().get_queryset().filter(tenant=tenant)

    def none(self) -> models.QuerySet:
        """An empty queryset (safe without a tenant: it can return nothing)."""
        return super().get_queryset().none()

    def unscoped(self) -> models.QuerySet:
        """All tenants' rows. Only for platform-level code that says why at the call site."""
        return super().get_queryset()


class TenantOwned(models.Model):
    """Base of every model that belongs to exactly one tenant."""

    tenant = models.ForeignKey("tenants.Tenant", on_delete=models.CASCADE, related_name="+", editable=False)

    objects = TenantScopedManager()
    # Django's internals (unique validation, related managers, deletion) need an unscoped
    # default manager; application code never uses this one.
    unscoped_objects = models.Manager()

    class Meta:
        abstract = True
        default_manager_name = "unscoped_objects"
