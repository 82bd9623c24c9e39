"""Data zones: where a tenant's copilot data is processed. Adding a zone is data, not code."""

from django.db import models


class DataZone(models.Model):
    """A processing region (us, eu, ...). A tenant's copilot calls never leave its zone."""

    code = models.SlugField(max_length=16, unique=True)
    name = models.CharField(max_length=80)

    class Meta:
        ordering = ["code"]

    def __str__(self) -> str:
        return f"{self.name} ({self.code})"
