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

from .azure import DeploymentTarget, request_parameters
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
    # The request settings sent to the deployment tried first (`azure.request_parameters`), with
    # how many deployments of the zone follow it; None when the zone has no active deployment.
    request: dict[str, Any] | None = None
    fallbacks: int = 0

    @property
    def label(self) -> str:
        return get_feature(self.feature).label

    @property
    def payload_json(self) -> str:
        return json.dumps(self.payload.as_prompt_data(), ensure_ascii=False, indent=1)


_KNOWN = {"company", "contact", "issue"}
_CONTACT = {"first_name", "last_name", "type"}
_ISSUE = {"summary", "description", "conversation"}
_ENTRY = {"author", "body", "at", "internal"}


def sent_preview(
    *, feature: str, body: dict[str, Any], targets: list[DeploymentTarget] | None = None, today: dt.date | None = None
) -> SentPreview:
    """The minimized payload and messages `feature` would send for `body`, and the request
    settings sent to the first of `targets` (the zone's deployments in the order they are tried);
    raises `PayloadError` like the call itself when the body cannot be used."""
    spec = get_feature(feature)
    payload = minimize_payload(body=body, today=today)
    targets = targets or []
    return SentPreview(
        feature=spec.slug,
        payload=payload,
        messages=render_messages(feature=spec, payload=payload),
        dropped=tuple(dropped_fields(body)),
        request=request_parameters(target=targets[0], spec=spec) if targets else None,
        fallbacks=max(0, len(targets) - 1),
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
