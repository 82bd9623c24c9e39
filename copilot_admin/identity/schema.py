"""The integration key in the OpenAPI schema (drf-spectacular): a bearer credential like the API tokens."""

from drf_spectacular.extensions import OpenApiAuthenticationExtension


class IntegrationKeyScheme(OpenApiAuthenticationExtension):
    """The key in the OpenAPI schema: a bearer credential like the API tokens."""

    target_class = "copilot_admin.identity.authentication.IntegrationKeyAuthentication"
    name = "integrationKey"

    def get_security_definition(self, auto_schema):
        return {"type": "http", "scheme": "bearer", "description": "An integration key (`cak_...`)."}
