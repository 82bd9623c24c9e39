"""Serializer fields of the API that accept exactly what the OpenAPI schema says they accept.

DRF's BooleanField also takes `0`, `1`, `"yes"`, `"on"` and friends, while the schema declares a
JSON boolean; a client sending `{"copilot_enabled": 0}` would switch the copilot off without
being told its request did not match the contract. Here a boolean is `true` or `false`.
"""

from collections.abc import Callable, Iterable

from django.db import models
from rest_framework import serializers


class JSONBooleanField(serializers.BooleanField):
    """`true` or `false` (and `null` where the field allows it); anything else is 400 `invalid`."""

    default_error_messages = {"invalid": "Must be true or false."}

    def to_internal_value(self, data):
        # `1 in {True}` holds in Python, so DRF's value sets cannot express this: check the type.
        if isinstance(data, bool):
            return data
        if data is None and self.allow_null:
            return None
        self.fail("invalid")


class CatalogueChoiceField(serializers.ChoiceField):
    """A choice field whose choices come from a function, read each time a serializer is made
    (DRF copies a serializer's fields per instance): for a catalogue that registrations extend
    after this field's module was loaded."""

    def __init__(self, *, choices: Callable[[], Iterable], **kwargs):
        super().__init__(choices=list(choices()), **kwargs)


class APIModelSerializer(serializers.ModelSerializer):
    """A ModelSerializer whose model boolean fields are JSON booleans."""

    serializer_field_mapping = {
        **serializers.ModelSerializer.serializer_field_mapping,
        models.BooleanField: JSONBooleanField,
    }


class QueryParamsSerializer(serializers.Serializer):
    """Query parameters as the schema declares them: an empty value (`?since=`) is a wrong value,
    400 naming the parameter, not a parameter left out (DRF would silently drop it)."""

    def to_internal_value(self, data):
        blank = {name: ["May not be empty."] for name in self.fields if name in data and data.get(name) == ""}
        if blank:
            raise serializers.ValidationError(blank)
        return super().to_internal_value(data)
