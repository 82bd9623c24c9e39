"""Pages of API lists: `limit` and `offset` are what the schema says they are, or a 400."""

from rest_framework.exceptions import ValidationError
from rest_framework import pagination


def query_int(request, name: str, *, minimum: int, maximum: int | None = None) -> int | None:
    """The integer query parameter `name` (None when absent); malformed or out of range: 400."""
    raw = request.query_params.get(name)
    if raw is None:
        return None
    try:
        value = int(raw) if raw.isascii() else None
    except ValueError:
        value = None
    if value is None or value < minimum or (maximum is not None and value > maximum):
        bounds = f"from {minimum} to {maximum}" if maximum is not None else f"of at least {minimum}"
        raise ValidationError({name: [f"An integer {bounds}."]})
    return value


class LimitOffsetPagination(pagination.LimitOffsetPagination):
    """DRF's limit/offset pages, but a malformed `limit` or `offset` is refused (400) instead of
    being silently replaced by the default: a client that asks for something it does not get
    should know."""

    def get_limit(self, request):
        query_int(request, self.limit_query_param, minimum=1)
        return super().get_limit(request)

    def get_offset(self, request):
        query_int(request, self.offset_query_param, minimum=0)
        return super().get_offset(request)

    def get_schema_operation_parameters(self, view):
        parameters = super().get_schema_operation_parameters(view)
        minimum = {self.limit_query_param: 1, self.offset_query_param: 0}
        for parameter in parameters:
            parameter["schema"]["minimum"] = minimum[parameter["name"]]
        return parameters
