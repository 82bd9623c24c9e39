"""The API's list pages: `limit` and `offset`, bounded.

A limit above `max_limit`, an offset above `max_offset`, or a value that is not a plain
non-negative integer is a 400 (`fields` names the parameter), never a database error on an
out-of-range integer, never silently the default and never "every row"; the schema declares
the same bounds.
"""

import re

from django.conf import settings
from rest_framework.exceptions import ValidationError
from rest_framework.pagination import LimitOffsetPagination

_DIGITS = re.compile(r"[0-9]{1,19}")


def query_int(request, name: str, *, minimum: int, maximum: int) -> int | None:
    """The integer query parameter `name` (None when absent); malformed or out of range: 400."""
    raw = request.query_params.get(name)
    if raw is None:
        return None
    if not _DIGITS.fullmatch(raw) or not minimum <= int(raw) <= maximum:
        raise ValidationError({name: [f"An integer from {minimum} to {maximum}."]})
    return int(raw)


class BoundedLimitOffsetPagination(LimitOffsetPagination):
    default_limit = settings.REST_FRAMEWORK.get("PAGE_SIZE", 50)
    max_limit = 200
    max_offset = 1_000_000_000

    def get_limit(self, request):
        limit = query_int(request, self.limit_query_param, minimum=1, maximum=self.max_limit)
        return self.default_limit if limit is None else limit

    def get_offset(self, request):
        offset = query_int(request, self.offset_query_param, minimum=0, maximum=self.max_offset)
        return offset or 0

    def paginate_queryset(self, queryset, request, view=None):
        # Both checked before any query, so a bad value costs nothing.
        self.get_limit(request)
        self.get_offset(request)
        return super().paginate_queryset(queryset, request, view)

    def get_schema_operation_parameters(self, view):
        parameters = super().get_schema_operation_parameters(view)
        bounds = {
            self.limit_query_param: {"minimum": 1, "maximum": self.max_limit, "default": self.default_limit},
            self.offset_query_param: {"minimum": 0, "maximum": self.max_offset, "default": 0},
        }
        for parameter in parameters:
            parameter["schema"].update(bounds.get(parameter["name"], {}))
        return parameters
