"""Data minimization: only the allowed fields survive; limits and types are enforced."""

import dataclasses
import datetime as dt
import json

import pytest

from copilot_admin.copilot.minimize import (
    INVALID_PAYLOAD,
    PAYLOAD_TOO_LARGE,
    InputLimits,
    MinimizedPayload,
    PayloadError,
    minimize_payload,
)

DROPPED = "CANARY-dropped-9c1e"
KEPT = "CANARY-kept-41b7"


def full_body() -> dict:
    """A body with every allowed field and a disallowed canary at every level."""
    return {
        "company": f"company-{DROPPED}",
        "ticket_number": DROPPED,
        "contact": {
            "first_name": f"Ana {KEPT}",
            "last_name": "Ruiz",
            "type": "customer",
            "email": f"{DROPPED}@example.com",
            "phone": DROPPED,
            "nested": {"deep": DROPPED},
        },
        "issue": {
            "summary": f"Printer offline {KEPT}",
            "description": "The printer on floor 2 does not print.",
            "resolution": DROPPED,
            "custom_fields": [{"name": "serial", "value": DROPPED}],
            "conversation": [
                {
                    "author": "contact",
                    "body": f"It shows error 49 {KEPT}",
                    "at": "2026-11-20T10:00:00Z",
                    "internal": False,
                    "attachments": [DROPPED],
                    "email": DROPPED,
                },
                {"author": "tech", "body": f"Note {DROPPED}", "at": "2026-11-20T10:05:00Z", "internal": True},
                {"author": "tech", "body": "Restarted the spooler.", "at": "2026-11-20T10:10:00+01:00",
                 "internal": False},
            ],
        },
        DROPPED: DROPPED,
    }


def ticket(*entries: dict, **issue) -> dict:
    """A minimal body with the given conversation entries and issue fields."""
    return {"issue": {"summary": "x", "conversation": list(entries), **issue}}


def everything_in(payload: MinimizedPayload) -> str:
    return json.dumps(dataclasses.asdict(payload), default=str) + repr(payload) + json.dumps(payload.as_prompt_data())


def test_keeps_exactly_the_allowed_fields():
    payload = minimize_payload(body=full_body(), today=dt.date(2026, 11, 22))

    assert payload.contact.first_name == f"Ana {KEPT}"
    assert payload.contact.last_name == "Ruiz"
    assert payload.contact.type == "customer"
    assert payload.issue.summary == f"Printer offline {KEPT}"
    assert payload.issue.description == "The printer on floor 2 does not print."
    assert [(e.author, e.body, e.at) for e in payload.issue.conversation] == [
        ("contact", f"It shows error 49 {KEPT}", "2026-11-20T10:00:00Z"),
        ("tech", "Restarted the spooler.", "2026-11-20T10:10:00+01:00"),
    ]
    assert payload.today == dt.date(2026, 11, 22)
    assert DROPPED not in everything_in(payload)
    assert KEPT in everything_in(payload)


def test_the_result_has_no_room_for_other_fields():
    assert [f.name for f in dataclasses.fields(MinimizedPayload)] == ["contact", "issue", "today"]
    assert set(minimize_payload(body=full_body()).as_prompt_data()) == {"today", "contact", "issue"}
    with pytest.raises(dataclasses.FrozenInstanceError):
        minimize_payload(body=full_body()).today = dt.date(2000, 1, 1)


def test_internal_entries_never_included():
    body = full_body()
    body["issue"]["conversation"] = [{"body": f"secret {DROPPED}", "internal": True}] * 5
    payload = minimize_payload(body=body)
    assert payload.issue.conversation == ()
    assert DROPPED not in everything_in(payload)


def test_today_defaults_to_the_current_utc_date():
    assert minimize_payload(body=full_body()).today == dt.datetime.now(dt.UTC).date()


def test_optional_parts_may_be_missing_or_null():
    payload = minimize_payload(body={"contact": None, "issue": {"summary": "VPN down", "description": None}})
    assert (payload.contact.first_name, payload.contact.last_name, payload.contact.type) == ("", "", "")
    assert payload.issue.description == ""
    assert payload.issue.conversation == ()


def test_entries_without_text_are_skipped():
    body = {"issue": {"summary": "x", "conversation": [{"author": "contact", "body": "  ", "internal": False}]}}
    assert minimize_payload(body=body).issue.conversation == ()


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ([], "body"),
        ("text", "body"),
        ({}, "issue"),
        ({"issue": "x"}, "issue"),
        ({"issue": {}}, "issue.summary"),
        ({"issue": {"summary": "   "}}, "issue.summary"),
        ({"issue": {"summary": 5}}, "issue.summary"),
        ({"issue": {"summary": "x", "description": ["a"]}}, "issue.description"),
        ({"issue": {"summary": "x"}, "contact": "Ana"}, "contact"),
        ({"issue": {"summary": "x"}, "contact": {"first_name": {"a": 1}}}, "contact.first_name"),
        ({"issue": {"summary": "x", "conversation": {"body": "a"}}}, "issue.conversation"),
        (ticket("a"), "issue.conversation[0]"),
        (ticket({"body": "a"}), "issue.conversation[0].internal"),
        (ticket({"body": "a", "internal": "false"}), "issue.conversation[0].internal"),
        (ticket({"body": "a", "internal": 0}), "issue.conversation[0].internal"),
        (ticket({"body": 1, "internal": False}), "issue.conversation[0].body"),
        (ticket({"body": "a", "author": 2, "internal": False}), "issue.conversation[0].author"),
        (ticket({"body": "a", "at": "yesterday", "internal": False}), "issue.conversation[0].at"),
        (ticket({"body": "a", "at": 1700000000, "internal": False}), "issue.conversation[0].at"),
    ],
)
def test_invalid_shapes_are_refused_with_the_field_named(body, field):
    with pytest.raises(PayloadError) as caught:
        minimize_payload(body=body)
    assert caught.value.code == INVALID_PAYLOAD
    assert caught.value.http_status == 400
    assert caught.value.field == field
    assert field in caught.value.message


def test_error_messages_never_quote_values():
    body = {"issue": {"summary": "x", "conversation": [{"body": "a", "at": f"{DROPPED}", "internal": False}]}}
    with pytest.raises(PayloadError) as caught:
        minimize_payload(body=body)
    assert DROPPED not in str(caught.value)

    limits = InputLimits(max_summary_chars=10)
    with pytest.raises(PayloadError) as caught:
        minimize_payload(body={"issue": {"summary": DROPPED * 2}}, limits=limits)
    assert DROPPED not in str(caught.value)


LIMITS = InputLimits(
    max_conversation_entries=3,
    max_name_chars=5,
    max_contact_type_chars=5,
    max_summary_chars=10,
    max_description_chars=20,
    max_author_chars=5,
    max_entry_chars=8,
    max_total_chars=40,
)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"issue": {"summary": "x" * 11}}, "issue.summary"),
        ({"issue": {"summary": "x", "description": "d" * 21}}, "issue.description"),
        ({"issue": {"summary": "x"}, "contact": {"first_name": "n" * 6}}, "contact.first_name"),
        ({"issue": {"summary": "x"}, "contact": {"last_name": "n" * 6}}, "contact.last_name"),
        ({"issue": {"summary": "x"}, "contact": {"type": "t" * 6}}, "contact.type"),
        (ticket(*[{"body": "b", "internal": True}] * 4), "issue.conversation"),
        (ticket({"body": "b" * 9, "internal": False}), "issue.conversation[0].body"),
        (ticket({"author": "a" * 6, "body": "b", "internal": False}), "issue.conversation[0].author"),
        (ticket(*[{"body": "b" * 8, "internal": False}] * 2, summary="x" * 10, description="d" * 20), "body"),
    ],
)
def test_limits_raise_payload_too_large(body, field):
    with pytest.raises(PayloadError) as caught:
        minimize_payload(body=body, limits=LIMITS)
    assert caught.value.code == PAYLOAD_TOO_LARGE
    assert caught.value.http_status == 413
    assert caught.value.field == field


def test_within_limits_passes_and_trimming_counts():
    body = {
        "issue": {
            "summary": "  " + "x" * 10 + "  ",
            "description": "d" * 20,
            "conversation": [{"body": "b" * 8, "internal": False}, {"body": "long internal" * 100, "internal": True}],
        }
    }
    payload = minimize_payload(body=body, limits=LIMITS)
    assert payload.total_chars == 38


def test_default_limits_accept_a_realistic_ticket():
    body = full_body()
    body["issue"]["conversation"] = [
        {"author": "contact", "body": "word " * 400, "at": "2026-11-20T10:00:00Z", "internal": False}
    ] * 25
    assert len(minimize_payload(body=body).issue.conversation) == 25
