"""Features: permission codes, strict schemas, and validators of the model's answer."""

import pytest

from copilot_admin.access.permissions import feature_grants
from copilot_admin.copilot.features import FEATURES, InvalidModelOutput, get_feature
from copilot_admin.copilot.prompts import PROMPT_TEMPLATES
from copilot_admin.simulator.server import generate_from_schema

CANARY = "CANARY-7f3a-model-echo"


def test_feature_values_and_permission_codes():
    assert list(FEATURES) == ["summarize", "time-entry", "prioritize"]
    assert FEATURES["summarize"].permission == "copilot.summarize"
    assert FEATURES["time-entry"].permission == "copilot.time_entry"
    assert FEATURES["prioritize"].permission == "copilot.prioritize"


def test_permission_codes_match_the_access_catalogue():
    assert {feature.slug: feature.permission for feature in FEATURES.values()} == {
        grant.feature: grant.code for grant in feature_grants()
    }


@pytest.mark.parametrize("feature", list(FEATURES))
def test_each_feature_has_a_versioned_template_and_a_strict_schema(feature):
    spec = get_feature(feature)
    assert spec is FEATURES[feature]
    assert spec.prompt_version in PROMPT_TEMPLATES
    assert spec.prompt_version.split("/")[0] == feature
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
        get_feature("translate")


@pytest.mark.parametrize(
    ("feature", "answer", "expected"),
    [
        (
            "summarize",
            {"summary": " Printer offline. ", "key_details": ["HP 4050", " "], "next_steps": ["Restart spooler"]},
            {"summary": "Printer offline.", "key_details": ["HP 4050"], "next_steps": ["Restart spooler"]},
        ),
        (
            "time-entry",
            {"notes": "Reset the password.", "hours": 0.25, "work_type": "Remote Support"},
            {"notes": "Reset the password.", "hours": 0.25, "work_type": "Remote Support"},
        ),
        (
            "time-entry",
            {"notes": "Full day onsite.", "hours": 24, "work_type": "Onsite Support"},
            {"notes": "Full day onsite.", "hours": 24.0, "work_type": "Onsite Support"},
        ),
        (
            "prioritize",
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
        ("summarize", [CANARY], None),
        ("summarize", {"summary": CANARY, "key_details": []}, "next_steps"),
        ("summarize", {"summary": 3, "key_details": [], "next_steps": []}, "summary"),
        ("summarize", {"summary": "  ", "key_details": [], "next_steps": []}, "summary"),
        ("summarize", {"summary": "x", "key_details": CANARY, "next_steps": []}, "key_details"),
        ("summarize", {"summary": "x", "key_details": [CANARY, 5], "next_steps": []}, "key_details[1]"),
        ("summarize", {"summary": "x", "key_details": [], "next_steps": [], CANARY: "x"}, None),
        ("time-entry", {"notes": CANARY, "hours": 0, "work_type": "Remote"}, "hours"),
        ("time-entry", {"notes": CANARY, "hours": -1, "work_type": "Remote"}, "hours"),
        ("time-entry", {"notes": CANARY, "hours": 24.25, "work_type": "Remote"}, "hours"),
        ("time-entry", {"notes": CANARY, "hours": True, "work_type": "Remote"}, "hours"),
        ("time-entry", {"notes": CANARY, "hours": "2", "work_type": "Remote"}, "hours"),
        ("time-entry", {"notes": CANARY, "hours": float("nan"), "work_type": "Remote"}, "hours"),
        ("time-entry", {"notes": CANARY, "hours": 1, "work_type": None}, "work_type"),
        ("prioritize", {"priority": CANARY, "rationale": "x"}, "priority"),
        ("prioritize", {"priority": "urgent", "rationale": "x"}, "priority"),
        ("prioritize", {"priority": "High", "rationale": "x"}, "priority"),
        ("prioritize", {"priority": "low"}, "rationale"),
    ],
)
def test_invalid_answers_raise_without_quoting_the_answer(feature, answer, field):
    with pytest.raises(InvalidModelOutput) as caught:
        FEATURES[feature].validate(answer)
    assert caught.value.field == field
    assert caught.value.feature == feature
    assert CANARY not in str(caught.value)


@pytest.mark.parametrize("feature", list(FEATURES))
@pytest.mark.parametrize("seed", [str(n) for n in range(25)])
def test_simulator_answers_validate_for_every_feature(feature, seed):
    spec = FEATURES[feature]
    answer = generate_from_schema(spec.schema, seed=seed)
    assert spec.validate(answer).keys() == set(spec.schema["properties"])
