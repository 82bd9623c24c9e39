"""Features: permission codes, strict schemas, and validators of the model's answer."""

import pytest

from copilot_admin.access.permissions import FEATURE_GRANTS
from copilot_admin.copilot.features import (
    FEATURE_PERMISSIONS,
    FEATURES,
    Feature,
    InvalidModelOutput,
    get_feature_spec,
)
from copilot_admin.copilot.prompts import PROMPT_TEMPLATES
from copilot_admin.simulator.server import generate_from_schema

CANARY = "CANARY-7f3a-model-echo"


def test_feature_values_and_permission_codes():
    assert [f.value for f in Feature] == ["summarize", "time-entry", "prioritize"]
    assert Feature.SUMMARIZE.permission == "copilot.summarize"
    assert Feature.TIME_ENTRY.permission == "copilot.time_entry"
    assert Feature.PRIORITIZE.permission == "copilot.prioritize"
    assert set(FEATURE_PERMISSIONS) == set(Feature)


def test_permission_codes_match_the_access_catalogue():
    assert {feature.value: code for feature, code in FEATURE_PERMISSIONS.items()} == {
        name: str(perm) for name, perm in FEATURE_GRANTS.items()
    }


@pytest.mark.parametrize("feature", list(Feature))
def test_each_feature_has_a_versioned_template_and_a_strict_schema(feature):
    spec = get_feature_spec(feature.value)
    assert spec.feature is feature
    assert spec.prompt_version in PROMPT_TEMPLATES
    assert spec.prompt_version.split("/")[0] == feature.value
    assert spec.prompt_version.split("/")[1].startswith("v")

    response_format = spec.response_format()
    assert response_format["type"] == "json_schema"
    assert response_format["json_schema"]["strict"] is True
    assert response_format["json_schema"]["name"] == spec.schema_name
    schema = response_format["json_schema"]["schema"]
    # Strict mode: every property required, nothing else allowed.
    assert schema["additionalProperties"] is False
    assert sorted(schema["required"]) == sorted(schema["properties"])


def test_unknown_feature_is_refused():
    with pytest.raises(ValueError):
        get_feature_spec("translate")


@pytest.mark.parametrize(
    ("feature", "answer", "expected"),
    [
        (
            Feature.SUMMARIZE,
            {"summary": " Printer offline. ", "key_details": ["HP 4050", " "], "next_steps": ["Restart spooler"]},
            {"summary": "Printer offline.", "key_details": ["HP 4050"], "next_steps": ["Restart spooler"]},
        ),
        (
            Feature.TIME_ENTRY,
            {"notes": "Reset the password.", "hours": 0.25, "work_type": "Remote Support"},
            {"notes": "Reset the password.", "hours": 0.25, "work_type": "Remote Support"},
        ),
        (
            Feature.TIME_ENTRY,
            {"notes": "Full day onsite.", "hours": 24, "work_type": "Onsite Support"},
            {"notes": "Full day onsite.", "hours": 24.0, "work_type": "Onsite Support"},
        ),
        (
            Feature.PRIORITIZE,
            {"priority": "critical", "rationale": "All users are down."},
            {"priority": "critical", "rationale": "All users are down."},
        ),
    ],
)
def test_valid_answers_are_returned_normalized(feature, answer, expected):
    assert FEATURES[feature].validate(answer) == expected


@pytest.mark.parametrize(
    ("feature", "answer", "field"),
    [
        (Feature.SUMMARIZE, [CANARY], None),
        (Feature.SUMMARIZE, {"summary": CANARY, "key_details": []}, "next_steps"),
        (Feature.SUMMARIZE, {"summary": 3, "key_details": [], "next_steps": []}, "summary"),
        (Feature.SUMMARIZE, {"summary": "  ", "key_details": [], "next_steps": []}, "summary"),
        (Feature.SUMMARIZE, {"summary": "x", "key_details": CANARY, "next_steps": []}, "key_details"),
        (Feature.SUMMARIZE, {"summary": "x", "key_details": [CANARY, 5], "next_steps": []}, "key_details[1]"),
        (Feature.SUMMARIZE, {"summary": "x", "key_details": [], "next_steps": [], CANARY: "x"}, None),
        (Feature.TIME_ENTRY, {"notes": CANARY, "hours": 0, "work_type": "Remote"}, "hours"),
        (Feature.TIME_ENTRY, {"notes": CANARY, "hours": -1, "work_type": "Remote"}, "hours"),
        (Feature.TIME_ENTRY, {"notes": CANARY, "hours": 24.25, "work_type": "Remote"}, "hours"),
        (Feature.TIME_ENTRY, {"notes": CANARY, "hours": True, "work_type": "Remote"}, "hours"),
        (Feature.TIME_ENTRY, {"notes": CANARY, "hours": "2", "work_type": "Remote"}, "hours"),
        (Feature.TIME_ENTRY, {"notes": CANARY, "hours": float("nan"), "work_type": "Remote"}, "hours"),
        (Feature.TIME_ENTRY, {"notes": CANARY, "hours": 1, "work_type": None}, "work_type"),
        (Feature.PRIORITIZE, {"priority": CANARY, "rationale": "x"}, "priority"),
        (Feature.PRIORITIZE, {"priority": "urgent", "rationale": "x"}, "priority"),
        (Feature.PRIORITIZE, {"priority": "High", "rationale": "x"}, "priority"),
        (Feature.PRIORITIZE, {"priority": "low"}, "rationale"),
    ],
)
def test_invalid_answers_raise_without_quoting_the_answer(feature, answer, field):
    with pytest.raises(InvalidModelOutput) as caught:
        FEATURES[feature].validate(answer)
    assert caught.value.field == field
    assert caught.value.feature == feature.value
    assert CANARY not in str(caught.value)


@pytest.mark.parametrize("feature", list(Feature))
@pytest.mark.parametrize("seed", [str(n) for n in range(25)])
def test_simulator_answers_validate_for_every_feature(feature, seed):
    spec = FEATURES[feature]
    answer = generate_from_schema(spec.schema, seed=seed)
    assert spec.validate(answer).keys() == set(spec.schema["properties"])
