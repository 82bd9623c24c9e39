"""The OpenAPI schema's error answers, declared once for every operation.

`ErrorAwareAutoSchema` (REST_FRAMEWORK["DEFAULT_SCHEMA_CLASS"]) adds to each operation the
error statuses the base classes and DRF can give it, all with the contract's error shape
(`Error`), derived from what the operation is:

- 400 where it takes input (a request body or query parameters);
- 401 and 403 where it needs authentication (403: the security role, a suspended tenant, or a
  service's refusal; also a session request without its CSRF token);
- 404 where a path names a tenant or an object (a foreign one answers the same), and where the
  view answers 404 to those it is hidden from (`denies_with_not_found`: the platform API);
- 409 for writes that a service can refuse because of the object's state (writes to an object
  and creations in a collection: a name already taken, a system role, a resolved case);
- 415 where it takes a body.

A 429 documents its `Retry-After` header. An operation documents anything else itself (`@extend_schema(responses={429: ...})`), and what
an operation declares itself wins over these defaults.
"""

import re

from drf_spectacular.openapi import AutoSchema
from drf_spectacular.utils import OpenApiResponse
from rest_framework import serializers

_PATH_PARAMETER = re.compile(r"{(\w+)}")
_WRITES = ("POST", "PUT", "PATCH", "DELETE")


class ErrorDetailSerializer(serializers.Serializer):
    code = serializers.CharField(help_text="Stable, machine-readable: what clients branch on.")
    message = serializers.CharField(help_text="For people; may change.")
    fields = serializers.DictField(required=False, help_text="Validation errors: each field's problems.")


class ErrorSerializer(serializers.Serializer):
    """The contract's error shape: `{"error": {"code": ..., "message": ...}}`."""

    error = ErrorDetailSerializer()


ERROR_DESCRIPTIONS = {
    400: "`invalid` (`fields` names each field's problems) or `parse_error`: the request was refused; nothing changed.",
    401: "`not_authenticated` / `authentication_failed`: no valid token or session.",
    403: "`permission_denied` (the security role does not allow it; recorded), `tenant_suspended`, or another "
    "refusal that `code` names.",
    404: "`not_found`: no such tenant for the caller, or no such object in it (a foreign one answers the same).",
    409: "The object's state does not allow it (for example `role_in_use`, `system_role_read_only`, "
    "`company_in_use`, `case_resolved`); `code` says why.",
    415: "`unsupported_media_type`: send application/json.",
}


RETRY_AFTER_HEADER = {
    "description": "When to try again: seconds, or an HTTP date.",
    "schema": {"type": "string"},
}


def error_response(status: int, description: str | None = None) -> OpenApiResponse:
    """An error answer in the contract's shape, for an operation's own `responses`."""
    return OpenApiResponse(ErrorSerializer, description=description or ERROR_DESCRIPTIONS.get(status, ""))


class ErrorAwareAutoSchema(AutoSchema):
    """drf-spectacular's AutoSchema plus the error answers of each operation (module docstring)."""

    def error_statuses(self) -> set[int]:
        statuses = set()
        method = self.method.upper()
        takes_body = method in ("POST", "PUT", "PATCH") and self.get_request_serializer() is not None
        takes_query = any(parameter.get("in") == "query" for parameter in self._get_parameters())
        if takes_body or takes_query:
            statuses.add(400)
        if takes_body:
            statuses.add(415)
        if self._requires_authentication():
            statuses |= {401, 403}
        path_parameters = _PATH_PARAMETER.findall(self.path)
        hides_with_404 = getattr(self.view, "denies_with_not_found", False)
        if path_parameters or hides_with_404:
            statuses.add(404)
        creates = method == "POST" and getattr(self.view, "action", None) == "create"
        if creates or (method in _WRITES and "id" in path_parameters):
            statuses.add(409)
        return statuses

    def _requires_authentication(self) -> bool:
        auth = self.get_auth()
        return bool(auth) and {} not in auth

    def _get_response_bodies(self, direction="response"):
        responses = super()._get_response_bodies(direction)
        if direction != "response":
            return responses
        for status in sorted(self.error_statuses()):
            if str(status) not in responses:
                responses[str(status)] = self._get_response_for_code(error_response(status), str(status))
        if "429" in responses:
            responses["429"].setdefault("headers", {}).setdefault("Retry-After", RETRY_AFTER_HEADER)
        return responses
