"""The copilot features, each declared once: what it is called, who may use it, what it asks of
the model and what it accepts back.

A `Feature` declaration holds everything about one feature: its name in URLs and tenant
switches (`slug`), its label, its grant's label in the role editor, the endpoint's
description, its versioned prompt template (the text lives in `prompts.py`), the fields of the
answer (a strict JSON schema, sent as `response_format`) and the completion budget.
`feature_register` makes it live: its grant (`copilot.<slug>`) joins access's permission
catalogue, and the copilot's route, view class and documented answer follow from the
declaration (`api.py`, `urls.py`). Adding a feature is one declaration here plus its prompt
template.

Guarantees:
- Slugs are the contract's names (`summarize`, `time-entry`, `prioritize`);
  `Feature.permission` is the grant a role needs (`copilot.summarize`, ...).
- `Feature.validate` returns a new dict holding exactly the schema's keys with checked types,
  or raises `InvalidModelOutput`. Its message names the feature and the field, never the value
  the model produced (that value may echo ticket text). Text, lists of text, enumerations and
  numbers are checked from the schema; a feature adds its own `validator` for more.
- `Feature.result_serializer` documents the answer in the OpenAPI schema: one field per answer
  field, after the call's metadata, with `result_fields` for what the schema cannot say.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from rest_framework import serializers

from copilot_admin.access.permissions import feature_grant_register, feature_grant_unregister, grant_code
from copilot_admin.copilot.serializers import CallMetadataSerializer

PRIORITIES: tuple[str, ...] = ("critical", "high", "medium", "low")

# Guards against a runaway answer; far above what the prompts ask for.
MAX_OUTPUT_TEXT_CHARS = 8000
MAX_OUTPUT_LIST_ITEMS = 50
MAX_HOURS = 24


class InvalidModelOutput(ValueError):
    """The model's answer is not valid JSON or does not match the feature's schema.

    `str(error)` names the feature and the offending field only; it never quotes the answer.
    """

    def __init__(self, *, feature: str, field: str | None, problem: str) -> None:
        self.feature = feature
        self.field = field
        self.problem = problem
        where = f"field '{field}'" if field else "answer"
        super().__init__(f"{feature}: {where} {problem}")


Validator = Callable[["Feature", Mapping[str, Any]], dict[str, Any]]


@dataclass(frozen=True, eq=False)
class Feature:
    """One copilot feature: everything the catalogue, the endpoint, the prompt and the client
    wrapper need to know about it.

    `output` maps each answer field to its JSON schema (every field is required, no other is
    allowed). `validator` replaces the checks derived from the schema when they are not enough
    (e.g. a number's range); `result_fields` replaces a documented field of the answer.
    """

    slug: str
    label: str
    grant_label: str
    description: str
    prompt_version: str
    output: Mapping[str, Mapping[str, Any]]
    max_completion_tokens: int
    validator: Validator | None = None
    result_fields: Mapping[str, serializers.Field] = field(default_factory=dict)
    temperature: float = 0.2

    @property
    def permission(self) -> str:
        """The permission code a security role must hold to use this feature."""
        return grant_code(self.slug)

    @property
    def schema_name(self) -> str:
        return self.prompt_version.replace("-", "_").replace("/", "_")

    @cached_property
    def schema(self) -> dict[str, Any]:
        # Strict structured outputs need every property required and no additional ones.
        return {
            "type": "object",
            "properties": dict(self.output),
            "required": list(self.output),
            "additionalProperties": False,
        }

    def response_format(self) -> dict[str, Any]:
        """The `response_format` argument for a chat completion: strict structured output."""
        return {
            "type": "json_schema",
            "json_schema": {"name": self.schema_name, "strict": True, "schema": self.schema},
        }

    def validate(self, answer: object) -> dict[str, Any]:
        """Check a decoded answer; return exactly the schema's fields or raise `InvalidModelOutput`."""
        if not isinstance(answer, Mapping):
            raise InvalidModelOutput(feature=self.slug, field=None, problem="must be a JSON object")
        expected = set(self.schema["properties"])
        if any(key not in expected for key in answer):
            # The unexpected key itself is not named: the model chose it and it may echo ticket text.
            raise InvalidModelOutput(feature=self.slug, field=None, problem="has unexpected fields")
        for key in self.schema["required"]:
            if key not in answer:
                raise InvalidModelOutput(feature=self.slug, field=key, problem="is missing")
        return (self.validator or _validate_by_schema)(self, answer)

    @cached_property
    def result_serializer(self) -> type[serializers.Serializer]:
        """The documented 200 answer: the call's metadata and the answer's fields
        (`<Slug>ResultSerializer`, e.g. `TimeEntryResultSerializer`)."""
        name = "".join(part.title() for part in self.slug.split("-")) + "ResultSerializer"
        # Made here, in the answer's order: DRF orders a serializer's fields by when they were made.
        fields = {
            key: copy.deepcopy(self.result_fields[key]) if key in self.result_fields else _result_field(spec)
            for key, spec in self.output.items()
        }
        return type(name, (CallMetadataSerializer,), {"__module__": __name__, "__qualname__": name, **fields})


# --- the registry ----------------------------------------------------------------------------

FEATURES: dict[str, Feature] = {}


def feature_register(feature: Feature) -> Feature:
    """Declare a feature: it joins the registry and its grant joins access's catalogue.

    A second feature of the same slug (or grant) is a `ValueError`.
    """
    if feature.slug in FEATURES:
        raise ValueError(f"The copilot feature {feature.slug!r} is declared already.")
    feature_grant_register(feature=feature.slug, label=feature.label, grant_label=feature.grant_label)
    FEATURES[feature.slug] = feature
    return feature


def feature_unregister(slug: str) -> None:
    """Take a feature out of the registry and its grant out of the catalogue (a feature
    declared for a test)."""
    FEATURES.pop(slug, None)
    feature_grant_unregister(slug)


def features() -> tuple[Feature, ...]:
    """Every declared feature, in the order of declaration."""
    return tuple(FEATURES.values())


def get_feature(feature: Feature | str) -> Feature:
    """The declared feature of a slug; `ValueError` for an unknown one."""
    if isinstance(feature, Feature):
        return feature
    try:
        return FEATURES[feature]
    except (KeyError, TypeError):
        raise ValueError(f"{feature!r} is not a copilot feature.") from None


# --- checks of the answer --------------------------------------------------------------------


def _text(feature: Feature, answer: Mapping[str, Any], field: str) -> str:
    value = answer[field]
    if not isinstance(value, str):
        raise InvalidModelOutput(feature=feature.slug, field=field, problem="must be a string")
    value = value.strip()
    if not value:
        raise InvalidModelOutput(feature=feature.slug, field=field, problem="must not be empty")
    if len(value) > MAX_OUTPUT_TEXT_CHARS:
        raise InvalidModelOutput(
            feature=feature.slug, field=field, problem=f"is longer than {MAX_OUTPUT_TEXT_CHARS} characters"
        )
    return value


def _text_list(feature: Feature, answer: Mapping[str, Any], field: str) -> list[str]:
    value = answer[field]
    if not isinstance(value, list):
        raise InvalidModelOutput(feature=feature.slug, field=field, problem="must be a list of strings")
    if len(value) > MAX_OUTPUT_LIST_ITEMS:
        raise InvalidModelOutput(
            feature=feature.slug, field=field, problem=f"has more than {MAX_OUTPUT_LIST_ITEMS} items"
        )
    items: list[str] = []
    for index, item in enumerate(value):
        if not isinstance(item, str):
            raise InvalidModelOutput(feature=feature.slug, field=f"{field}[{index}]", problem="must be a string")
        if len(item) > MAX_OUTPUT_TEXT_CHARS:
            raise InvalidModelOutput(
                feature=feature.slug,
                field=f"{field}[{index}]",
                problem=f"is longer than {MAX_OUTPUT_TEXT_CHARS} characters",
            )
        if item.strip():
            items.append(item.strip())
    return items


def _choice(feature: Feature, answer: Mapping[str, Any], field: str, choices: list[str]) -> str:
    value = answer[field]
    if not isinstance(value, str) or value not in choices:
        raise InvalidModelOutput(feature=feature.slug, field=field, problem=f"must be one of {', '.join(choices)}")
    return value


def _number(feature: Feature, answer: Mapping[str, Any], field: str) -> float:
    value = answer[field]
    # bool is an int in Python; true/false is not a number.
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise InvalidModelOutput(feature=feature.slug, field=field, problem="must be a number")
    return float(value)


def _validate_by_schema(feature: Feature, answer: Mapping[str, Any]) -> dict[str, Any]:
    """The checks every answer gets, field by field, from the field's JSON schema."""
    checked: dict[str, Any] = {}
    for key, spec in feature.output.items():
        if spec.get("enum"):
            checked[key] = _choice(feature, answer, key, list(spec["enum"]))
        elif spec.get("type") == "array":
            checked[key] = _text_list(feature, answer, key)
        elif spec.get("type") == "number":
            checked[key] = _number(feature, answer, key)
        else:
            checked[key] = _text(feature, answer, key)
    return checked


def _result_field(spec: Mapping[str, Any]) -> serializers.Field:
    if spec.get("enum"):
        return serializers.ChoiceField(choices=list(spec["enum"]))
    if spec.get("type") == "array":
        return serializers.ListField(child=serializers.CharField())
    if spec.get("type") == "number":
        return serializers.FloatField()
    return serializers.CharField()


def _validate_time_entry(feature: Feature, answer: Mapping[str, Any]) -> dict[str, Any]:
    hours = _number(feature, answer, "hours")
    if not 0 < hours <= MAX_HOURS:
        raise InvalidModelOutput(
            feature=feature.slug, field="hours", problem=f"must be greater than 0 and at most {MAX_HOURS}"
        )
    return {
        "notes": _text(feature, answer, "notes"),
        "hours": hours,
        "work_type": _text(feature, answer, "work_type"),
    }


_STRING_LIST = {"type": "array", "items": {"type": "string"}}

# --- the features ----------------------------------------------------------------------------

SUMMARIZE = feature_register(Feature(
    slug="summarize",
    label="Summarize ticket",
    grant_label="Summarize tickets",
    description="Summarize a ticket: `summary`, `key_details`, `next_steps`.",
    prompt_version="summarize/v1",
    output={
        "summary": {"type": "string", "description": "Two to four sentences: the problem and where it stands."},
        "key_details": {**_STRING_LIST, "description": "Short facts a technician needs."},
        "next_steps": {**_STRING_LIST, "description": "Concrete next actions, most important first."},
    },
    max_completion_tokens=800,
))

TIME_ENTRY = feature_register(Feature(
    slug="time-entry",
    label="Draft time entry",
    grant_label="Draft time entries",
    description="Draft a time entry: `notes`, `hours`, `work_type`.",
    prompt_version="time-entry/v1",
    output={
        "notes": {"type": "string", "description": "Customer-facing note of the work performed."},
        # Range and step are checked by the validator: strict mode does not honour minimum/maximum everywhere.
        "hours": {"type": "number", "description": "Time spent in hours, a multiple of 0.25, above 0, at most 24."},
        "work_type": {"type": "string", "description": "Short category, e.g. Remote Support."},
    },
    validator=_validate_time_entry,
    result_fields={"hours": serializers.FloatField(min_value=0, max_value=MAX_HOURS)},
    max_completion_tokens=500,
))

PRIORITIZE = feature_register(Feature(
    slug="prioritize",
    label="Suggest priority",
    grant_label="Suggest priorities",
    description="Suggest a priority: `priority` (critical|high|medium|low), `rationale`.",
    prompt_version="prioritize/v1",
    output={
        "priority": {"type": "string", "enum": list(PRIORITIES)},
        "rationale": {"type": "string", "description": "One or two sentences explaining the priority."},
    },
    max_completion_tokens=300,
))
