"""The copilot features: what each one asks of the model and what it accepts back.

Each feature has a versioned prompt template (text in `prompts.py`), a strict JSON schema the
model's answer must follow (sent as `response_format`), and a validator that checks the answer
again on our side, because a deployment may ignore the schema or answer with something else.

Guarantees:
- `Feature` values are the URL and tenant-switch names (`summarize`, `time-entry`,
  `prioritize`); `Feature.<x>.permission` is the grant a role needs (`copilot.summarize`, ...).
- `FeatureSpec.validate` returns a new dict holding exactly the schema's keys with checked
  types, or raises `InvalidModelOutput`. Its message names the feature and the field, never
  the value the model produced (that value may echo ticket text).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from django.db import models


class Feature(models.TextChoices):
    SUMMARIZE = "summarize", "Summarize ticket"
    TIME_ENTRY = "time-entry", "Draft time entry"
    PRIORITIZE = "prioritize", "Suggest priority"

    @property
    def permission(self) -> str:
        """The permission code a security role must hold to use this feature."""
        return FEATURE_PERMISSIONS[self]

    @property
    def spec(self) -> FeatureSpec:
        return FEATURES[self]


FEATURE_PERMISSIONS: Mapping[Feature, str] = {
    Feature.SUMMARIZE: "copilot.summarize",
    Feature.TIME_ENTRY: "copilot.time_entry",
    Feature.PRIORITIZE: "copilot.prioritize",
}

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


@dataclass(frozen=True)
class FeatureSpec:
    """Everything the service and the client wrapper need to run one feature."""

    feature: Feature
    prompt_version: str
    schema_name: str
    schema: Mapping[str, Any]
    validator: Callable[[Feature, Mapping[str, Any]], dict[str, Any]]
    max_completion_tokens: int
    temperature: float = 0.2

    @property
    def permission(self) -> str:
        return FEATURE_PERMISSIONS[self.feature]

    def response_format(self) -> dict[str, Any]:
        """The `response_format` argument for a chat completion: strict structured output."""
        return {
            "type": "json_schema",
            "json_schema": {"name": self.schema_name, "strict": True, "schema": self.schema},
        }

    def validate(self, answer: object) -> dict[str, Any]:
        """Check a decoded answer; return exactly the schema's fields or raise `InvalidModelOutput`."""
        if not isinstance(answer, Mapping):
            raise InvalidModelOutput(feature=self.feature.value, field=None, problem="must be a JSON object")
        expected = set(self.schema["properties"])
        if any(key not in expected for key in answer):
            # The unexpected key itself is not named: the model chose it and it may echo ticket text.
            raise InvalidModelOutput(feature=self.feature.value, field=None, problem="has unexpected fields")
        for key in self.schema["required"]:
            if key not in answer:
                raise InvalidModelOutput(feature=self.feature.value, field=key, problem="is missing")
        return self.validator(self.feature, answer)


# --- checks shared by the validators ------------------------------------------------------


def _text(feature: Feature, answer: Mapping[str, Any], field: str) -> str:
    value = answer[field]
    if not isinstance(value, str):
        raise InvalidModelOutput(feature=feature.value, field=field, problem="must be a string")
    value = value.strip()
    if not value:
        raise InvalidModelOutput(feature=feature.value, field=field, problem="must not be empty")
    if len(value) > MAX_OUTPUT_TEXT_CHARS:
        raise InvalidModelOutput(
            feature=feature.value, field=field, problem=f"is longer than {MAX_OUTPUT_TEXT_CHARS} characters"
        )
    return value


def _text_list(feature: Feature, answer: Mapping[str, Any], field: str) -> list[str]:
    value = answer[field]
    if not isinstance(value, list):
        raise InvalidModelOutput(feature=feature.value, field=field, problem="must be a list of strings")
    if len(value) > MAX_OUTPUT_LIST_ITEMS:
        raise InvalidModelOutput(
            feature=feature.value, field=field, problem=f"has more than {MAX_OUTPUT_LIST_ITEMS} items"
        )
    items: list[str] = []
    for index, item in enumerate(value):
        if not isinstance(item, str):
            raise InvalidModelOutput(feature=feature.value, field=f"{field}[{index}]", problem="must be a string")
        if len(item) > MAX_OUTPUT_TEXT_CHARS:
            raise InvalidModelOutput(
                feature=feature.value,
                field=f"{field}[{index}]",
                problem=f"is longer than {MAX_OUTPUT_TEXT_CHARS} characters",
            )
        if item.strip():
            items.append(item.strip())
    return items


def _validate_summarize(feature: Feature, answer: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "summary": _text(feature, answer, "summary"),
        "key_details": _text_list(feature, answer, "key_details"),
        "next_steps": _text_list(feature, answer, "next_steps"),
    }


def _validate_time_entry(feature: Feature, answer: Mapping[str, Any]) -> dict[str, Any]:
    hours = answer["hours"]
    # bool is an int in Python; true/false is not a duration.
    if isinstance(hours, bool) or not isinstance(hours, (int, float)) or not math.isfinite(hours):
        raise InvalidModelOutput(feature=feature.value, field="hours", problem="must be a number")
    if not 0 < hours <= MAX_HOURS:
        raise InvalidModelOutput(
            feature=feature.value, field="hours", problem=f"must be greater than 0 and at most {MAX_HOURS}"
        )
    return {
        "notes": _text(feature, answer, "notes"),
        "hours": float(hours),
        "work_type": _text(feature, answer, "work_type"),
    }


def _validate_prioritize(feature: Feature, answer: Mapping[str, Any]) -> dict[str, Any]:
    priority = answer["priority"]
    if not isinstance(priority, str) or priority not in PRIORITIES:
        raise InvalidModelOutput(
            feature=feature.value, field="priority", problem=f"must be one of {', '.join(PRIORITIES)}"
        )
    return {"priority": priority, "rationale": _text(feature, answer, "rationale")}


def _object_schema(properties: dict[str, Any]) -> dict[str, Any]:
    # Strict structured outputs need every property required and no additional ones.
    return {
        "type": "object",
        "properties": properties,
        "required": list(properties),
        "additionalProperties": False,
    }


_STRING_LIST = {"type": "array", "items": {"type": "string"}}

FEATURES: Mapping[Feature, FeatureSpec] = {
    Feature.SUMMARIZE: FeatureSpec(
        feature=Feature.SUMMARIZE,
        prompt_version="summarize/v1",
        schema_name="summarize_v1",
        schema=_object_schema(
            {
                "summary": {"type": "string", "description": "Two to four sentences: the problem and where it stands."},
                "key_details": {**_STRING_LIST, "description": "Short facts a technician needs."},
                "next_steps": {**_STRING_LIST, "description": "Concrete next actions, most important first."},
            }
        ),
        validator=_validate_summarize,
        max_completion_tokens=800,
    ),
    Feature.TIME_ENTRY: FeatureSpec(
        feature=Feature.TIME_ENTRY,
        prompt_version="time-entry/v1",
        schema_name="time_entry_v1",
        schema=_object_schema(
            {
                "notes": {"type": "string", "description": "Customer-facing note of the work performed."},
                # Range and step are checked by the validator: strict mode does not honour minimum/maximum everywhere.
                "hours": {
                    "type": "number",
                    "description": "Time spent in hours, a multiple of 0.25, above 0, at most 24.",
                },
                "work_type": {"type": "string", "description": "Short category, e.g. Remote Support."},
            }
        ),
        validator=_validate_time_entry,
        max_completion_tokens=500,
    ),
    Feature.PRIORITIZE: FeatureSpec(
        feature=Feature.PRIORITIZE,
        prompt_version="prioritize/v1",
        schema_name="prioritize_v1",
        schema=_object_schema(
            {
                "priority": {"type": "string", "enum": list(PRIORITIES)},
                "rationale": {"type": "string", "description": "One or two sentences explaining the priority."},
            }
        ),
        validator=_validate_prioritize,
        max_completion_tokens=300,
    ),
}


def get_feature_spec(feature: Feature | str) -> FeatureSpec:
    """The spec for a feature value; `ValueError` for an unknown one."""
    return FEATURES[Feature(feature)]
