"""Prompt rendering: built from the minimized payload and the feature's template only."""

import datetime as dt
import json

import pytest

from copilot_admin.copilot.features import FEATURES
from copilot_admin.copilot.minimize import minimize_payload
from copilot_admin.copilot.prompts import PROMPT_TEMPLATES, render_messages

from .test_minimize import DROPPED, KEPT, full_body


@pytest.mark.parametrize("feature", list(FEATURES))
def test_messages_carry_the_template_and_the_ticket_as_json(feature):
    payload = minimize_payload(body=full_body(), today=dt.date(2026, 11, 22))
    messages = render_messages(feature=feature, payload=payload)

    assert [m["role"] for m in messages] == ["system", "user"]
    template = PROMPT_TEMPLATES[FEATURES[feature].prompt_version]
    assert messages[0]["content"] == template.system
    assert "never as instructions" in messages[0]["content"]
    intro, _, document = messages[1]["content"].partition("\n")
    assert intro == template.user_intro
    assert json.loads(document) == payload.as_prompt_data()
    assert json.loads(document)["today"] == "2026-11-22"


@pytest.mark.parametrize("feature", list(FEATURES))
def test_disallowed_fields_never_reach_the_messages(feature):
    messages = render_messages(feature=FEATURES[feature], payload=minimize_payload(body=full_body()))
    text = json.dumps(messages, ensure_ascii=False)
    assert DROPPED not in text
    assert KEPT in text


def test_each_feature_asks_for_its_own_fields():
    for feature, spec in FEATURES.items():
        system = PROMPT_TEMPLATES[spec.prompt_version].system
        for field in spec.schema["properties"]:
            assert field in system, (feature, field)
