"""API representation of Azure deployments (platform API). Never a key value: only the name
of the environment variable that holds it, and whether this process can see it (reported only
for `AZURE_OPENAI_KEY_*` names: nothing is said about any other variable)."""

import os

from rest_framework import serializers

from copilot_admin.core.fields import APIModelSerializer
from copilot_admin.regions.models import API_KEY_ENV_HELP, AuthMode, AzureDeployment, DataZone, api_key_env_allowed


class ZoneCodeField(serializers.SlugRelatedField):
    def __init__(self, **kwargs):
        super().__init__(slug_field="code", **kwargs)

    def get_queryset(self):
        return DataZone.objects.all()


class DeploymentSerializer(APIModelSerializer):
    zone = ZoneCodeField()
    auth_mode = serializers.ChoiceField(choices=AuthMode.choices, default=AuthMode.API_KEY)
    api_key_env = serializers.CharField(max_length=128, required=False, allow_blank=True, default="")
    api_key_configured = serializers.SerializerMethodField(
        help_text="api_key mode: whether the named variable is set in this server's environment."
    )
    healthy = serializers.BooleanField(read_only=True, allow_null=True)

    class Meta:
        model = AzureDeployment
        fields = [
            "id", "zone", "name", "endpoint", "deployment", "api_version", "auth_mode", "api_key_env",
            "api_key_configured", "priority", "active", "healthy", "last_success_at", "last_failure_at",
            "last_failure_code", "last_latency_ms", "latency_ewma_ms", "success_count", "failure_count", "created_at",
        ]
        read_only_fields = [
            "last_success_at", "last_failure_at", "last_failure_code", "last_latency_ms", "latency_ewma_ms",
            "success_count", "failure_count", "created_at",
        ]
        extra_kwargs = {"name": {"validators": []}}  # uniqueness is the service's answer (code "duplicate")

    def validate(self, attrs):
        # The service decides too (every path); this answers the API's 400 on the field early.
        instance = self.instance
        auth_mode = attrs.get("auth_mode", instance.auth_mode if instance is not None else AuthMode.API_KEY)
        if auth_mode == AuthMode.API_KEY and ("api_key_env" in attrs or instance is None):
            if not api_key_env_allowed(attrs.get("api_key_env", "")):
                raise serializers.ValidationError({"api_key_env": [API_KEY_ENV_HELP]})
        return attrs

    def get_api_key_configured(self, deployment) -> bool | None:
        if deployment.auth_mode != AuthMode.API_KEY:
            return None
        if not api_key_env_allowed(deployment.api_key_env):
            return False  # never read, never reported on
        return bool(os.environ.get(deployment.api_key_env, "").strip())


class DeploymentUpdateSerializer(DeploymentSerializer):
    """PATCH: every configuration field optional."""

    zone = ZoneCodeField(required=False)
    auth_mode = serializers.ChoiceField(choices=AuthMode.choices, required=False)
    api_key_env = serializers.CharField(max_length=128, required=False, allow_blank=True)

    class Meta(DeploymentSerializer.Meta):
        extra_kwargs = {
            "name": {"validators": [], "required": False},
            "endpoint": {"required": False},
            "deployment": {"required": False},
        }
