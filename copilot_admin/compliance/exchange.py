"""The data-exchange record of a tenant: what leaves the platform on a copilot call, to whom,
how, and what stays. Generated from the code and the configuration, never written by hand:

- the fields that leave are what the minimizer (`copilot/minimize.py`) keeps from a probe call
  holding every field a PSA may send plus ones it must drop, read back from the payload that
  prompts are rendered from (`MinimizedPayload.as_prompt_data`): change the allow-list and
  the record changes with it;
- the recipients are the tenant's zone and the active deployments serving it (endpoint host,
  TLS from its scheme, authentication from its mode);
- what is kept here is the list of columns of the usage record (metadata only).
"""

import datetime as dt
from dataclasses import dataclass
from urllib.parse import urlsplit

from copilot_admin.copilot.minimize import minimize_payload
from copilot_admin.regions.models import AuthMode
from copilot_admin.regions.selectors import deployments_serving
from copilot_admin.usage.models import UsageRecord

PROCESSOR = "Microsoft Azure OpenAI Service (Microsoft, as processor)"
PROBE_TEXT = "probe"
# A call carrying every field a PSA may send, and ones that must never leave: what the
# minimizer keeps of it is what leaves.
PROBE_BODY = {
    "company_id": 1,
    "contact": {"first_name": PROBE_TEXT, "last_name": PROBE_TEXT, "type": PROBE_TEXT, "email": PROBE_TEXT,
                "phone": PROBE_TEXT},
    "issue": {
        "summary": PROBE_TEXT, "description": PROBE_TEXT, "id": PROBE_TEXT, "resolution": PROBE_TEXT,
        "conversation": [
            {"author": PROBE_TEXT, "body": PROBE_TEXT, "at": "2026-01-01T00:00:00+00:00", "internal": False,
             "email": PROBE_TEXT},
            {"author": PROBE_TEXT, "body": PROBE_TEXT, "at": "2026-01-01T00:00:00+00:00", "internal": True},
        ],
    },
    "ticket_id": PROBE_TEXT,
}
FIELD_LABELS = {
    "today": "Today's date",
    "contact.first_name": "Contact first name",
    "contact.last_name": "Contact last name",
    "contact.type": "Contact type",
    "issue.summary": "Issue summary",
    "issue.description": "Initial description",
    "issue.conversation[].author": "Conversation entry author (non-internal entries only)",
    "issue.conversation[].at": "Conversation entry time (non-internal entries only)",
    "issue.conversation[].body": "Conversation entry text (non-internal entries only)",
}
AUTH_LABELS = {
    AuthMode.API_KEY: "API key (api-key header; the key is read from the environment, never stored)",
    AuthMode.ENTRA_ID: "Microsoft Entra ID (OAuth 2.0 bearer token from azure-identity)",
}


def _paths(value, prefix: str = "") -> list[str]:
    if isinstance(value, dict):
        return [path for key, item in value.items() for path in _paths(item, f"{prefix}.{key}" if prefix else key)]
    if isinstance(value, list):
        return [path for item in value[:1] for path in _paths(item, f"{prefix}[]")]
    return [prefix]


def fields_leaving(*, minimizer=None) -> list[dict]:
    """The fields a copilot call sends upstream, as `{"path", "label"}`, from the minimizer
    itself (a probe run through it; `minimizer` defaults to the copilot's)."""
    payload = (minimizer or minimize_payload)(body=PROBE_BODY, today=dt.date(2026, 1, 1))
    return [{"path": path, "label": FIELD_LABELS.get(path, path)} for path in _paths(payload.as_prompt_data())]


@dataclass(frozen=True)
class Recipient:
    name: str
    host: str
    endpoint: str
    deployment: str
    api_version: str
    tls: bool
    auth: str
    priority: int

    def as_dict(self) -> dict:
        return {"name": self.name, "host": self.host, "endpoint": self.endpoint, "deployment": self.deployment,
                "api_version": self.api_version, "tls": self.tls, "auth": self.auth, "priority": self.priority}


def _recipient(deployment) -> Recipient:
    parts = urlsplit(deployment.endpoint)
    return Recipient(
        name=deployment.name, host=parts.hostname or "", endpoint=f"{parts.scheme}://{parts.netloc}",
        deployment=deployment.deployment, api_version=deployment.api_version, tls=parts.scheme == "https",
        auth=AUTH_LABELS.get(deployment.auth_mode, deployment.get_auth_mode_display()), priority=deployment.priority,
    )


def data_exchange_record(*, tenant, minimizer=None) -> dict:
    """The tenant's data-exchange record (the page and `data-exchange/` render it)."""
    recipients = [_recipient(deployment) for deployment in deployments_serving(tenant.zone_id)]
    stored = [f.name for f in UsageRecord._meta.concrete_fields if f.name not in ("id", "tenant")]
    return {
        "tenant": tenant.slug,
        "zone": {"code": tenant.zone.code, "name": tenant.zone.name},
        "copilot_enabled": tenant.copilot_enabled,
        "source": "The tenant's PSA (or a member in the portal) calls the copilot API with one ticket's data.",
        "fields_leaving": fields_leaving(minimizer=minimizer),
        "never_leaving": "Every other field of the call (e-mail addresses, ids, internal notes, the client "
                         "company) is dropped before a prompt is built; the client company decides scope only.",
        "processor": PROCESSOR,
        "recipients": [recipient.as_dict() for recipient in recipients],
        "routing": "Calls go only to the active deployments of the tenant's zone, lowest priority first; "
                   "another deployment of the same zone is tried when one fails. No call leaves the zone.",
        "transport": "HTTPS (TLS) to every deployment whose endpoint is https://"
                     + ("" if all(r.tls for r in recipients) else "; a deployment without TLS is listed as such"),
        "stored_here": {
            "content": False,
            "statement": "Nothing of the ticket content or of the answer is stored here: not in the database, "
                         "logs, task messages, e-mails or the audit log.",
            "metadata_columns": stored,
        },
        "answer": "The answer goes back to the caller in the response of the same request; it is not stored.",
    }
