"""Data minimization: the only ticket data that may leave the platform.

`minimize_payload` turns the body of a copilot call into a `MinimizedPayload`, an immutable
value holding exactly what the contract allows to reach the model:

- contact: first name, last name, type;
- issue: summary, initial description, and the conversation entries that are not internal
  (author, body, time);
- today's date.

Guarantees:
- Every other key, at any level, is dropped: it is never read into the result, so it cannot
  be rendered into a prompt. Internal conversation entries are never included.
- Types are checked without DRF: every kept field is a string (or null where optional),
  the conversation is a list of objects, `internal` is a real boolean on every entry
  (a missing flag is refused rather than guessed, so a private note cannot slip through).
- Sizes are bounded by `InputLimits`: too many entries or too long a field raise
  `PayloadError(code="payload_too_large")`; a wrong shape raises
  `PayloadError(code="invalid_payload")`. Messages name the field and the limit, never a value.
- The client company is not part of the result: it decides scope, it is never sent.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

INVALID_PAYLOAD = "invalid_payload"
PAYLOAD_TOO_LARGE = "payload_too_large"


class PayloadError(ValueError):
    """The request body cannot be used. `code` is the API error code, `field` a dotted path."""

    def __init__(self, *, code: str, field: str, message: str) -> None:
        self.code = code
        self.field = field
        self.message = message
        # 413 for size, 400 for shape: a hint for the API layer.
        self.http_status = 413 if code == PAYLOAD_TOO_LARGE else 400
        super().__init__(message)


@dataclass(frozen=True)
class InputLimits:
    """Bounds on what one call may send. Character counts are after trimming whitespace."""

    max_conversation_entries: int = 200
    max_name_chars: int = 200
    max_contact_type_chars: int = 100
    max_summary_chars: int = 1_000
    max_description_chars: int = 20_000
    max_author_chars: int = 200
    max_entry_chars: int = 10_000
    max_total_chars: int = 60_000


DEFAULT_LIMITS = InputLimits()


@dataclass(frozen=True)
class Contact:
    first_name: str
    last_name: str
    type: str


@dataclass(frozen=True)
class ConversationEntry:
    author: str
    body: str
    at: str


@dataclass(frozen=True)
class Issue:
    summary: str
    description: str
    conversation: tuple[ConversationEntry, ...]


@dataclass(frozen=True)
class MinimizedPayload:
    """Exactly the fields allowed to reach the model, and nothing else."""

    contact: Contact
    issue: Issue
    today: dt.date

    @property
    def total_chars(self) -> int:
        return _total_chars(self.contact, self.issue)

    def as_prompt_data(self) -> dict[str, Any]:
        """A JSON-ready dict of the payload, in the order the prompt presents it."""
        return {
            "today": self.today.isoformat(),
            "contact": {
                "first_name": self.contact.first_name,
                "last_name": self.contact.last_name,
                "type": self.contact.type,
            },
            "issue": {
                "summary": self.issue.summary,
                "description": self.issue.description,
                "conversation": [
                    {"author": entry.author, "at": entry.at, "body": entry.body} for entry in self.issue.conversation
                ],
            },
        }


def minimize_payload(
    *, body: object, today: dt.date | None = None, limits: InputLimits = DEFAULT_LIMITS
) -> MinimizedPayload:
    """Validate a copilot call body and keep only the allowed fields (see the module docstring).

    `today` defaults to the current UTC date.
    """
    root = _object(body, "body", required=True)
    contact_data = _object(root.get("contact"), "contact", required=False)
    issue_data = _object(root.get("issue"), "issue", required=True)

    contact = Contact(
        first_name=_string(contact_data, "first_name", "contact.first_name", limits.max_name_chars),
        last_name=_string(contact_data, "last_name", "contact.last_name", limits.max_name_chars),
        type=_string(contact_data, "type", "contact.type", limits.max_contact_type_chars),
    )
    summary = _string(issue_data, "summary", "issue.summary", limits.max_summary_chars, required=True)
    description = _string(issue_data, "description", "issue.description", limits.max_description_chars)
    conversation = _conversation(issue_data.get("conversation"), limits)
    issue = Issue(summary=summary, description=description, conversation=conversation)

    total = _total_chars(contact, issue)
    if total > limits.max_total_chars:
        raise PayloadError(
            code=PAYLOAD_TOO_LARGE,
            field="body",
            message=f"The ticket text is longer than {limits.max_total_chars} characters in total.",
        )
    return MinimizedPayload(contact=contact, issue=issue, today=today or dt.datetime.now(dt.UTC).date())


def _object(value: object, field: str, *, required: bool) -> Mapping[str, Any]:
    if value is None and not required:
        return {}
    if not isinstance(value, Mapping):
        raise PayloadError(code=INVALID_PAYLOAD, field=field, message=f"{field} must be an object.")
    return value


def _string(data: Mapping[str, Any], key: str, field: str, max_chars: int, *, required: bool = False) -> str:
    value = data.get(key)
    if value is None:
        value = ""
    if not isinstance(value, str):
        raise PayloadError(code=INVALID_PAYLOAD, field=field, message=f"{field} must be a string.")
    value = value.strip()
    if required and not value:
        raise PayloadError(code=INVALID_PAYLOAD, field=field, message=f"{field} is required.")
    if len(value) > max_chars:
        raise PayloadError(
            code=PAYLOAD_TOO_LARGE, field=field, message=f"{field} is longer than {max_chars} characters."
        )
    return value


def _conversation(value: object, limits: InputLimits) -> tuple[ConversationEntry, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise PayloadError(
            code=INVALID_PAYLOAD, field="issue.conversation", message="issue.conversation must be a list."
        )
    # Counted before filtering: the bound is on what a client may send, internal or not.
    if len(value) > limits.max_conversation_entries:
        raise PayloadError(
            code=PAYLOAD_TOO_LARGE,
            field="issue.conversation",
            message=f"issue.conversation has more than {limits.max_conversation_entries} entries.",
        )
    kept: list[ConversationEntry] = []
    for index, raw in enumerate(value):
        path = f"issue.conversation[{index}]"
        entry = _object(raw, path, required=True)
        internal = entry.get("internal")
        if not isinstance(internal, bool):
            raise PayloadError(
                code=INVALID_PAYLOAD,
                field=f"{path}.internal",
                message=f"{path}.internal is required and must be true or false.",
            )
        if internal:
            continue
        author = _string(entry, "author", f"{path}.author", limits.max_author_chars)
        body = _string(entry, "body", f"{path}.body", limits.max_entry_chars)
        at = _timestamp(entry, f"{path}.at")
        if body:  # an entry with nothing said (e.g. only an attachment) tells the model nothing
            kept.append(ConversationEntry(author=author, body=body, at=at))
    return tuple(kept)


def _timestamp(entry: Mapping[str, Any], field: str) -> str:
    value = entry.get("at")
    if value is None or value == "":
        return ""
    if not isinstance(value, str) or len(value) > 64:
        raise PayloadError(code=INVALID_PAYLOAD, field=field, message=f"{field} must be an ISO 8601 date-time.")
    try:
        dt.datetime.fromisoformat(value.strip())
    except ValueError:
        raise PayloadError(
            code=INVALID_PAYLOAD, field=field, message=f"{field} must be an ISO 8601 date-time."
        ) from None
    return value.strip()


def _total_chars(contact: Contact, issue: Issue) -> int:
    return (
        len(contact.first_name)
        + len(contact.last_name)
        + len(contact.type)
        + len(issue.summary)
        + len(issue.description)
        + sum(len(entry.author) + len(entry.body) + len(entry.at) for entry in issue.conversation)
    )
