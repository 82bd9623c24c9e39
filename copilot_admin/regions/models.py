"""Data zones: where a tenant's copilot data is processed. Adding a zone is data, not code."""

from django.core.validators import RegexValidator
from django.db import models

from copilot_admin.core.secrets import API_KEY_ENV_PREFIX, api_key_env_allowed

API_KEY_ENV_HELP = f"must be an environment variable named {API_KEY_ENV_PREFIX}<NAME> (A-Z, 0-9, _)"


class DataZone(models.Model):
    """A processing region (us, eu, ...). A tenant's copilot calls never leave its zone."""

    code = models.SlugField(max_length=16, unique=True)
    name = models.CharField(max_length=80)

    class Meta:
        ordering = ["code"]

    def __str__(self) -> str:
        return f"{self.name} ({self.code})"


class AuthMode(models.TextChoices):
    API_KEY = "api_key", "API key (from an environment variable)"
    ENTRA_ID = "entra_id", "Entra ID (azure-identity)"


class AzureDeployment(models.Model):
    """One Azure OpenAI deployment serving one data zone.

    A tenant's copilot calls go only to the active deployments of its zone, lowest
    `priority` first; the next one is tried when one fails with a retryable error. The API
    key is never stored: `api_key_env` names the environment variable that holds it.

    The health fields are written by `deployment_health_record` after each attempt (a
    queryset update, so they are not audited as configuration changes).
    """

    zone = models.ForeignKey(DataZone, on_delete=models.PROTECT, related_name="deployments")
    name = models.SlugField(max_length=64, unique=True, help_text="Our name for it: shown in usage records and logs.")
    endpoint = models.URLField(max_length=255, help_text="The Azure OpenAI resource, e.g. https://my-resource.openai.azure.com")
    deployment = models.CharField(max_length=128, help_text="The deployment name on the Azure resource.")
    api_version = models.CharField(max_length=32, default="2024-10-21")
    auth_mode = models.CharField(max_length=12, choices=AuthMode.choices, default=AuthMode.API_KEY)
    api_key_env = models.CharField(
        max_length=128,
        blank=True,
        help_text=f"Name of the environment variable holding the API key (api_key mode), {API_KEY_ENV_PREFIX}<NAME>.",
        validators=[RegexValidator(r"^AZURE_OPENAI_KEY_[A-Z0-9_]+\Z", message=API_KEY_ENV_HELP)],
    )
    priority = models.PositiveIntegerField(default=100, help_text="Lower is tried first.")
    active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    # Health, from the calls themselves.
    last_success_at = models.DateTimeField(null=True, blank=True)
    last_failure_at = models.DateTimeField(null=True, blank=True)
    last_failure_code = models.CharField(max_length=64, blank=True)
    last_latency_ms = models.PositiveIntegerField(null=True, blank=True)
    latency_ewma_ms = models.FloatField(null=True, blank=True, help_text="Exponentially weighted mean latency.")
    success_count = models.PositiveBigIntegerField(default=0)
    failure_count = models.PositiveBigIntegerField(default=0)

    HEALTH_FIELDS = (
        "last_success_at",
        "last_failure_at",
        "last_failure_code",
        "last_latency_ms",
        "latency_ewma_ms",
        "success_count",
        "failure_count",
    )
    # Configuration changes are audited; the health fields change with every call and are not.
    AUDIT_EXCLUDED_FIELDS = HEALTH_FIELDS

    class Meta:
        ordering = ["zone__code", "priority", "name"]
        indexes = [models.Index(fields=["zone", "active", "priority"], name="regions_deployment_routing")]

    def __str__(self) -> str:
        return f"{self.name} ({self.zone.code})"

    @property
    def api_key_env_allowed(self) -> bool:
        """Whether the key variable it names may be read at all (a name stored before the
        `AZURE_OPENAI_KEY_` rule is never read nor reported on)."""
        return api_key_env_allowed(self.api_key_env)

    @property
    def healthy(self) -> bool | None:
        """None before any call; else whether the latest attempt succeeded."""
        if self.last_success_at is None and self.last_failure_at is None:
            return None
        if self.last_failure_at is None:
            return True
        return self.last_success_at is not None and self.last_success_at >= self.last_failure_at
