"""What an entry says to a reader: its changes with names instead of ids, and one sentence of
what happened ("admin@northwind.example cloned Technician as Technician (no time entry)").

Entries recorded by `audit_change_record` since the readable form hold the names as they were
at the time of the change in `changes` (their raw ids and codes in `metadata["raw"]`).
Older entries hold django-auditlog's raw text (`"13"`, `"True"`, `"co_managed"`,
`"tenants.Membership.None"`): `ReadableNames` reads those with the names the objects have
now (marked as such), labels for choices and on/off for booleans.

Reads only, within one tenant's objects: a raw id is never resolved outside the entry's
tenant. No query runs for an entry recorded in the readable form.
"""

import re
from collections import OrderedDict
from dataclasses import dataclass

from django.contrib.contenttypes.models import ContentType
from django.db import models

from copilot_admin.audit.models import RAW_CHANGES_KEY, ActorType, AuditEntry
from tenants.models import Tenant

ON, OFF = "on", "off"
_MANAGER_REPR = re.compile(r"^[A-Za-z_]\w*\.[A-Za-z_]\w*\.None$")  # str() of a related manager
_CACHE_SIZE = 5000

# Object type -> how a sentence names it.
OBJECT_TYPE_LABELS = {
    "membership": "user",
    "user": "account",
    "role": "role",
    "company": "company",
    "tenant": "tenant settings",
    "limits": "usage limits",
    "platform_limits": "platform usage limits",
    "copilot_access": "copilot access",
    "abuse_case": "abuse case",
    "limit_warning": "limit warning",
    "zone": "data zone",
    "deployment": "deployment",
    "audit": "audit log",
}

_VERBS = {"create": "created", "update": "changed", "delete": "deleted"}

# A changed field as a sentence names it; any other field reads with spaces for underscores.
FIELD_LABELS = {
    "feature_switches": "copilot features",
    "copilot_enabled": "copilot",
    "is_active": "active",
    "user_type": "user type",
    "accepted_at": "accepted",
    "api_version": "API version",
    "auth_mode": "authentication",
    "api_key_env": "API key variable",
    "full_name": "name",
    "co_managed": "co-managed",
}
# Codes recorded as keys of a change's value (a tenant's feature switches by slug) and the name a
# reader sees instead. The rooms above register theirs (access: each copilot feature's label when
# the feature is declared); audit cannot import them.
_VALUE_LABELS: dict[str, str] = {}


def value_label_register(code: str, label: str) -> None:
    """Show `code` as `label` where a recorded change holds it as a key (`{"time-entry": "on"}`)."""
    _VALUE_LABELS[code] = label


def value_label_unregister(code: str) -> None:
    _VALUE_LABELS.pop(code, None)


def value_label(code: str) -> str:
    """The registered name of `code` (a copilot feature's label), else the code."""
    return _VALUE_LABELS.get(code, code)


# Actions a filter names in words of their own; any other reads as "<object> <verb>".
ACTION_LABELS = {
    "auth.login": "Sign-in",
    "auth.logout": "Sign-out",
    "auth.login_failed": "Failed sign-in",
    "auth.lockout": "Locked out",
    "auth.password_change": "Password changed",
    "auth.token_create": "API token created",
    "auth.token_revoke": "API token revoked",
    "access.denied": "Access refused",
    "copilot.call": "Copilot call",
    "audit.export": "Audit log exported",
    "audit.platform_view": "Audit log read across tenants",
    "audit.purge": "Retention purge",
    "operator.tenant_access": "Platform operator opened the tenant",
    "user.invite": "Invitation sent",
    "membership.invitation_resend": "Invitation sent again",
    "role.clone": "Role cloned",
}
_PREFIX_LABELS = {"auth": "sign-in and tokens", "access": "access", "operator": "platform operator",
                  "copilot": "copilot", "audit": "audit log"}


def _sentence_case(text: str) -> str:
    return text[:1].upper() + text[1:]


def object_type_label(object_type: str) -> str:
    """An object type as a filter names it ("copilot_access" -> "Copilot access")."""
    labels = {**OBJECT_TYPE_LABELS, "copilot.feature": "copilot feature", "token": "API token", "route": "page or route"}
    return _sentence_case(labels.get(object_type, object_type.replace("_", " ").replace(".", " ")))


def action_prefix_label(prefix: str) -> str:
    """All actions of a prefix, as a filter offers them ("company" -> "Company: every action")."""
    name = _PREFIX_LABELS.get(prefix) or OBJECT_TYPE_LABELS.get(prefix) or prefix.replace("_", " ")
    return f"{_sentence_case(name)}: every action"


def action_label(action: str) -> str:
    """An action as a filter names it ("company.update" -> "Company changed")."""
    if action in ACTION_LABELS:
        return ACTION_LABELS[action]
    subject, _, verb = action.rpartition(".")
    if not subject:
        return _sentence_case(action.replace("_", " "))
    name = OBJECT_TYPE_LABELS.get(subject, subject.replace("_", " "))
    return _sentence_case(f"{name} {_VERBS.get(verb, verb.replace('_', ' '))}")


def field_label(name: str) -> str:
    """A changed field as a reader names it ("feature_switches" -> "copilot features")."""
    return FIELD_LABELS.get(name, name.replace("_", " "))


def is_readable_form(entry: AuditEntry) -> bool:
    """True for an entry recorded with readable values (a model change since the readable
    form, or an event, whose changes are what its service wrote)."""
    return not entry.content_type_id or RAW_CHANGES_KEY in (entry.metadata or {})


@dataclass(frozen=True)
class ChangeRow:
    """One changed field as a reader sees it; `named_now` when a name was looked up today
    (an entry recorded before names were kept)."""

    field: str
    before: str
    after: str
    named_now: bool = False

    @property
    def label(self) -> str:
        return field_label(self.field)


def _shown(value) -> str:
    if value is None or value == "None" or (isinstance(value, str) and _MANAGER_REPR.match(value)):
        return ""
    if isinstance(value, (list, tuple)):
        return ", ".join(_shown(v) for v in value)
    if isinstance(value, bool):
        return ON if value else OFF
    if isinstance(value, dict):
        return ", ".join(f"{value_label(key)} {_shown(item)}" for key, item in sorted(value.items()))
    return str(value)


class ReadableNames:
    """Reads older entries' raw values as names, within one tenant (or the platform chain,
    `tenant` None: only choices and booleans are read, no object). Caches the names it looked
    up (bounded), so an export of many entries asks once per object."""

    def __init__(self, *, tenant_id: int | None):
        self.tenant_id = tenant_id
        self._names: OrderedDict = OrderedDict()

    def _model(self, entry: AuditEntry):
        if not entry.content_type_id:
            return None
        try:
            return ContentType.objects.get_for_id(entry.content_type_id).model_class()
        except ContentType.DoesNotExist:
            return None

    def _related_name(self, related_model, pk) -> str | None:
        key = (related_model._meta.label_lower, pk)
        if key in self._names:
            self._names.move_to_end(key)
            return self._names[key]
        name = self._lookup(related_model, pk)
        self._names[key] = name
        if len(self._names) > _CACHE_SIZE:
            self._names.popitem(last=False)
        return name

    def _lookup(self, related_model, pk) -> str | None:
        if self.tenant_id is None:
            return None
        label = related_model._meta.label_lower
        if label == "tenants.tenant":
            obj = related_model.objects.filter(pk=pk).first() if int(pk) == self.tenant_id else None
            return obj.name if obj else None
        if label == "tenants.user":
            # Only an account that is (or was invited as) a member of this tenant.
            obj = related_model.objects.filter(pk=pk, memberships__tenant_id=self.tenant_id).first()
            return (obj.email or "").lower() if obj else None
        if label == "tenants.membership":
            obj = related_model.objects.for_tenant(Tenant(pk=self.tenant_id)).filter(pk=pk).select_related("user").first()
            return (obj.user.email or "").lower() if obj else None
        if any(field.name == "tenant" for field in related_model._meta.concrete_fields):
            # Tenant-owned (fail-closed manager): read inside the entry's tenant only.
            manager = related_model.objects
            queryset = manager.for_tenant(Tenant(pk=self.tenant_id)) if hasattr(manager, "for_tenant") else None
            obj = queryset.filter(pk=pk).first() if queryset is not None else None
            return str(obj) if obj else None
        if label == "regions.datazone":
            obj = related_model.objects.filter(pk=pk).first()
            return str(obj) if obj else None
        return None

    def _value(self, field, raw):
        """(readable value, looked up now) of one raw side."""
        if raw is None or raw == "None" or (isinstance(raw, str) and _MANAGER_REPR.match(raw)):
            return None, False
        if field is None:
            return raw, False
        if field.is_relation and (field.many_to_one or field.one_to_one):
            if str(raw).isdigit():
                name = self._related_name(field.related_model, int(raw))
                if name is not None:
                    return name, True
            return raw, False
        if isinstance(field, models.BooleanField):
            return {"True": ON, "False": OFF}.get(str(raw), raw), False
        if field.choices:
            return str(dict(field.flatchoices).get(raw, raw)), False
        return raw, False

    def changes(self, entry: AuditEntry) -> dict:
        """{field: [before, after]} (or the m2m form) with readable values."""
        changes = entry.changes or {}
        if is_readable_form(entry):
            return changes
        model = self._model(entry)
        readable = {}
        for name, value in changes.items():
            field = _field(model, name)
            if isinstance(value, (list, tuple)) and len(value) == 2:
                readable[name] = [self._value(field, value[0])[0], self._value(field, value[1])[0]]
            else:
                readable[name] = value
        return readable

    def rows(self, entry: AuditEntry) -> list[ChangeRow]:
        """The changed fields as rows for a page: many-to-many as the objects added or removed."""
        changes = entry.changes or {}
        readable_form = is_readable_form(entry)
        model = None if readable_form else self._model(entry)
        rows = []
        for name, value in sorted(changes.items()):
            if isinstance(value, dict) and value.get("type") == "m2m":
                objects = ", ".join(_shown(o) for o in value.get("objects", []) if _shown(o))
                added = value.get("operation") == "add"
                rows.append(ChangeRow(name, "" if added else objects, objects if added else ""))
            elif isinstance(value, (list, tuple)) and len(value) == 2:
                if readable_form:
                    rows.append(ChangeRow(name, _shown(value[0]), _shown(value[1])))
                else:
                    field = _field(model, name)
                    (before, now_b), (after, now_a) = self._value(field, value[0]), self._value(field, value[1])
                    rows.append(ChangeRow(name, _shown(before), _shown(after), named_now=now_b or now_a))
            else:
                rows.append(ChangeRow(name, "", _shown(value)))
        return rows


def _field(model, name):
    if model is None:
        return None
    try:
        return model._meta.get_field(name)
    except Exception:  # noqa: BLE001 - a field since removed: the raw value is shown
        return None


def actor_label(entry: AuditEntry) -> str:
    """Who acted: the e-mail, or `system` (or `someone not signed in`)."""
    if entry.actor_email:
        return entry.actor_email
    return "someone not signed in" if entry.actor_type == ActorType.ANONYMOUS else "system"


def _change_phrase(name: str, value) -> str:
    if isinstance(value, dict) and value.get("type") == "m2m":
        objects = ", ".join(_shown(o) for o in value.get("objects", []) if _shown(o))
        return f"{field_label(name)} {'+' if value.get('operation') == 'add' else '−'} {objects}"
    if isinstance(value, (list, tuple)) and len(value) == 2:
        before, after = _shown(value[0]) or "—", _shown(value[1]) or "—"
        return f"{field_label(name)} {before} → {after}"
    return f"{field_label(name)} {_shown(value)}"


def entry_sentence(entry: AuditEntry, changes: dict | None = None) -> str:
    """What happened, in one sentence, from the entry's own fields (`changes`: its readable
    changes, when the caller has read them already). Runs no query."""
    actor, action, meta = actor_label(entry), entry.action, entry.metadata or {}
    changes = entry.changes if changes is None else changes
    what = OBJECT_TYPE_LABELS.get(entry.object_type, entry.object_type.replace("_", " "))
    name = entry.object_repr or entry.object_id
    denied = "" if entry.outcome == "success" else f" ({entry.outcome})"
    if action == "role.clone":
        return f"{actor} cloned {meta.get('cloned_from', 'a role')} as {name}"
    special = {
        "auth.login": f"{actor} signed in",
        "auth.logout": f"{actor} signed out",
        "auth.login_failed": f"Failed sign-in as {name or actor}",
        "auth.lockout": f"{name or actor} was locked out after failed sign-ins",
        "auth.password_change": f"{actor} changed a password",
        "auth.token_create": f"{actor} created an API token",
        "auth.token_revoke": f"{actor} revoked an API token",
        "access.denied": f"{actor} was refused {entry.object_id or 'an action'}",
        "copilot.call": f"{actor} used the copilot feature {value_label(meta.get('feature', entry.object_id))}{denied}",
        "audit.export": f"{actor} exported the audit log ({meta.get('format', '')})",
        "audit.platform_view": f"{actor} read the audit log across tenants",
        "audit.purge": f"The retention purge removed {name}",
        "operator.tenant_access": f"Platform operator {actor} opened the tenant",
        "user.invite": f"{actor} invited {name}",
        "membership.invitation_resend": f"{actor} sent the invitation to {name} again",
    }
    if action in special:
        return special[action] + ("" if action == "copilot.call" or not denied else denied)
    verb = _VERBS.get(action.rsplit(".", 1)[-1])
    if verb is not None and entry.object_type:
        sentence = f"{actor} {verb} {what} {name}".rstrip()
        if verb == "changed" and changes:
            phrases = [_change_phrase(field, value) for field, value in sorted(changes.items())]
            more = f" (+{len(phrases) - 3} more)" if len(phrases) > 3 else ""
            sentence += ": " + "; ".join(phrases[:3]) + more
        return sentence + denied
    target = f" {what} {name}".rstrip() if entry.object_type else ""
    return f"{actor}: {action}{target}{denied}"
