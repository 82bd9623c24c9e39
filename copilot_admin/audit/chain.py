"""Tamper evidence: the canonical content of an entry and its chained hash.

hash = sha256(canonical JSON of the entry's content including `prev_hash`). The canonical
JSON has sorted keys, no whitespace, ASCII only; `created_at` is ISO 8601 in UTC with
microseconds and a `Z`; a whole number is written as an integer (5.0 as 5: PostgreSQL's
jsonb may give back either). An exported JSONL line carries every field listed in
`HASHED_FIELDS`, so a recipient can recompute each hash and follow the chain without us.
"""

import hashlib
import json
from datetime import UTC, datetime

from django.core.serializers.json import DjangoJSONEncoder

HASHED_FIELDS = (
    "tenant_id", "seq", "created_at", "actor_id", "actor_email", "actor_type", "remote_addr", "action",
    "object_type", "object_id", "object_repr", "changes", "metadata", "outcome", "correlation_id", "prev_hash",
)


def json_safe(value):
    """`value` as plain JSON types (what the database gives back), so the stored and the
    hashed forms are the same. Non-finite numbers, which JSON cannot hold, become strings."""
    return json.loads(
        json.dumps(value if value is not None else {}, cls=DjangoJSONEncoder, sort_keys=True),
        parse_constant=str,
    )


def _whole_numbers_as_integers(value):
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {key: _whole_numbers_as_integers(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_whole_numbers_as_integers(item) for item in value]
    return value


def utc_iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def canonical_content(fields: dict) -> bytes:
    content = {name: _whole_numbers_as_integers(fields[name]) for name in HASHED_FIELDS}
    if isinstance(content["created_at"], datetime):
        content["created_at"] = utc_iso(content["created_at"])
    return json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def entry_hash(fields: dict) -> str:
    """The hash of an entry given as a mapping of `HASHED_FIELDS` (a model's values() row)."""
    return hashlib.sha256(canonical_content(fields)).hexdigest()
