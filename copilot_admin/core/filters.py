"""List filters of the API (django-filter): a malformed filter value is a 400, never ignored.

django-filter's REST BooleanFilter reads anything but `true`/`false` as "no filter", so
`?is_active=yes` would list everyone while the schema says the parameter is a boolean.
"""

from django import forms
from django.db import models
from django_filters import rest_framework as filters
from drf_spectacular.contrib.django_filters import DjangoFilterExtension
from drf_spectacular.utils import extend_schema_field


class StrictBooleanField(forms.NullBooleanField):
    """`true` or `false` (absent or empty: no filter); anything else is invalid."""

    widget = forms.TextInput
    VALUES = {"true": True, "false": False}

    def to_python(self, value):
        if value in (None, ""):
            return None
        if isinstance(value, bool):
            return value
        if value not in self.VALUES:
            raise forms.ValidationError("Use true or false.", code="invalid")
        return self.VALUES[value]


class StrictBooleanFilter(filters.BooleanFilter):
    field_class = StrictBooleanField

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("widget", forms.TextInput)
        super().__init__(*args, **kwargs)


class StrictFilterSet(filters.FilterSet):
    """A FilterSet whose model boolean fields filter with StrictBooleanFilter."""

    FILTER_DEFAULTS = {**filters.FilterSet.FILTER_DEFAULTS, models.BooleanField: {"filter_class": StrictBooleanFilter}}


class StrictFilterBackend(filters.DjangoFilterBackend):
    """REST_FRAMEWORK["DEFAULT_FILTER_BACKENDS"]: `filterset_fields` build a StrictFilterSet."""

    filterset_base = StrictFilterSet


@extend_schema_field({"type": "integer", "format": "int64", "minimum": 1, "maximum": 2**63 - 1})
class IdFilter(filters.NumberFilter):
    """An object id: a positive integer that fits the database's bigint, else a 400."""

    field_class = forms.IntegerField

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("min_value", 1)
        kwargs.setdefault("max_value", 2**63 - 1)
        super().__init__(*args, **kwargs)


class StrictFilterSchema(DjangoFilterExtension):
    """The schema of StrictFilterBackend's parameters: as django-filter's, and a choice filter
    also lists the empty value, which django-filter reads as "no filter"."""

    target_class = "copilot_admin.core.filters.StrictFilterBackend"
    priority = 1

    def get_schema_operation_parameters(self, auto_schema, *args, **kwargs):
        parameters = super().get_schema_operation_parameters(auto_schema, *args, **kwargs)
        for parameter in parameters:
            enum = parameter.get("schema", {}).get("enum")
            if enum is not None and "" not in enum:
                enum.append("")
        return parameters
