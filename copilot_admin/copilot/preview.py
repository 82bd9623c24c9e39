"""What a copilot call would send upstream, shown before sending (the playground's privacy panel).

`sent_preview` runs the real minimization (`minimize_payload`) and the feature's real prompt
rendering (`render_messages`), the same two steps `copilot_invoke` takes, and lists what the
minimization dropped. It calls nothing, stores nothing and logs nothing.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from typing import Any

from .features import get_feature
from .minimize import MinimizedPayload, minimize_payload
from .prompts import ChatMessage, render_messages


@dataclass(frozen=True)
class DroppedField:
    field: str  # the dotted path in the call's body
    reason: str


@dataclass(frozen=True)
class SentPreview:
    feature: str
    payload: MinimizedPayload
    messages: list[ChatMessage]
    dropped: tuple[DroppedField, ...]

    @property
    def payload_json(self) -> str:
        return json.dumps(self.payload.as_prompt_data(), ensure_ascii=False, indent=1)


_KNOWN = {"company", "contact", "issue"}
_CONTACT = {"first_name", "last_name", "type"}
_ISSUE = {"summary", "description", "conversation"}
_ENTRY = {"author", "body", "at", "internal"}


def sent_preview(*, feature: str, body: dict[str, Any], today: dt.date | None = None) -> SentPreview:
    """The minimized payload and messages `feature` would send for `body`; raises `PayloadError`
    like the call itself when the body cannot be used."""
    spec = get_feature(feature)
    payload = minimize_payload(body=body, today=today)
    return SentPreview(
        feature=spec.slug,
        payload=payload,
        messages=render_messages(feature=spec, payload=payload),
        dropped=tuple(dropped_fields(body)),
    )


def dropped_fields(body: dict[str, Any]) -> list[DroppedField]:
    """The parts of `body` the minimization leaves out, by path, with the reason."""
    dropped: list[DroppedField] = []
    if "company" in body:
        dropped.append(DroppedField("company", "decides the scope of the call; never sent"))
    dropped += [DroppedField(key, "not an allowed field") for key in sorted(set(body) - _KNOWN)]
    contact = body.get("contact") or {}
    dropped += [DroppedField(f"contact.{k}", "not an allowed field") for k in sorted(set(contact) - _CONTACT)]
    issue = body.get("issue") or {}
    dropped += [DroppedField(f"issue.{k}", "not an allowed field") for k in sorted(set(issue) - _ISSUE)]
    for index, entry in enumerate(issue.get("conversation") or []):
        path = f"issue.conversation[{index}]"
        if entry.get("internal") is True:
            dropped.append(DroppedField(path, "internal note: never sent"))
            continue
        if not str(entry.get("body") or "").strip():
            dropped.append(DroppedField(path, "nothing said: an empty entry is not sent"))
            continue
        dropped.append(DroppedField(f"{path}.internal", "the flag only decides whether the entry is sent"))
        dropped += [DroppedField(f"{path}.{k}", "not an allowed field") for k in sorted(set(entry) - _ENTRY)]
    return dropped
