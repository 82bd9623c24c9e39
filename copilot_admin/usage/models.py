"""Usage: limit counters (and, later, usage records, limit policies, abuse cases)."""

from django.db import models


class LimitCounter(models.Model):
    """One fixed window's running total for one limit key: the database counter backend's state.

    Written only by `copilot_admin.usage.counters.DatabaseCounterBackend`, which keeps `used`
    exact under concurrency. `key` is `<window>:<limit key>` (e.g. `minute:u:42:requests`);
    the limit keys carry tenant and membership ids, so this is infrastructure, not
    tenant-owned data, and it holds no content. Rows past `expires_at` are garbage.
    """

    key = models.CharField(max_length=191)
    window_start = models.DateTimeField(help_text="Start of the UTC-aligned window bucket.")
    used = models.BigIntegerField(default=0)
    expires_at = models.DateTimeField(db_index=True, help_text="After this the row can be deleted.")

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["key", "window_start"], name="usage_limitcounter_key_window_unique"),
            models.CheckConstraint(condition=models.Q(used__gte=0), name="usage_limitcounter_used_not_negative"),
        ]

    def __str__(self) -> str:
        return f"{self.key}@{self.window_start:%Y-%m-%dT%H:%M:%SZ}={self.used}"
