"""Streaming the audit log as CSV or JSON Lines, in constant memory.

Rows come from the database in chunks (`.iterator(chunk_size)`: a server-side cursor on
PostgreSQL) and leave as byte chunks of about 64 KiB; nothing holds more than one chunk.
Times are UTC (ISO 8601 with `Z`; the CSV column says so). Each row carries its tenant, its
chain position and hashes; a JSON Lines row carries every hashed field exactly as hashed, so a
recipient can recompute each entry's hash (see `copilot_admin.audit.chain`), and beside them
the readable values (`READABLE_KEYS`: the tenant's slug, one sentence of what happened, the
changes with names), which the hash does not cover.
"""

import csv
import io
import json
from collections.abc import Iterable, Iterator
from types import SimpleNamespace

from copilot_admin.audit.chain import HASHED_FIELDS, utc_iso
from copilot_admin.audit.readable import ReadableNames, entry_sentence


class ExportFormat:
    CSV = "csv"
    JSONL = "jsonl"
    CHOICES = (CSV, JSONL)
    CONTENT_TYPES = {CSV: "text/csv; charset=utf-8", JSONL: "application/x-ndjson; charset=utf-8"}


FIELDS = (*HASHED_FIELDS, "hash")
# Read beside the hashed fields: the readable columns need the model of a change.
_READ_FIELDS = (*FIELDS, "content_type_id", "tenant__slug")
CSV_COLUMNS = (
    "seq", "created_at_utc", "tenant_id", "tenant", "actor_id", "actor_email", "actor_type", "remote_addr", "action",
    "object_type", "object_id", "object_repr", "outcome", "summary", "changes_readable", "changes", "metadata",
    "correlation_id", "prev_hash", "hash",
)
# Keys of a JSON Lines row that are not hashed: the readable values beside the raw ones.
READABLE_KEYS = ("tenant", "summary", "changes_readable")
CHUNK_ROWS = 2000
_FLUSH_BYTES = 64 * 1024
# A spreadsheet runs a cell starting with one of these as a formula.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _cell(value) -> str:
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(_FORMULA_START) else text


class _Readable:
    """The readable values of exported rows: one `ReadableNames` per chain (bounded caches)."""

    def __init__(self):
        self._names: dict = {}

    def __call__(self, row: dict) -> tuple[str, dict]:
        """(summary sentence, readable changes) of one row."""
        entry = SimpleNamespace(**row)
        names = self._names.get(row["tenant_id"])
        if names is None:
            names = self._names[row["tenant_id"]] = ReadableNames(tenant_id=row["tenant_id"])
        changes = names.changes(entry)
        return entry_sentence(entry, changes), changes


def _csv_lines(rows: Iterable[dict]) -> Iterator[str]:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(CSV_COLUMNS)
    readable = _Readable()
    for row in rows:
        summary, changes = readable(row)
        writer.writerow([
            row["seq"], utc_iso(row["created_at"]), row["tenant_id"] or "", _cell(row["tenant__slug"] or ""),
            row["actor_id"] or "", _cell(row["actor_email"]), row["actor_type"], _cell(row["remote_addr"]),
            _cell(row["action"]), _cell(row["object_type"]), _cell(row["object_id"]), _cell(row["object_repr"]),
            row["outcome"], _cell(summary), _cell(json.dumps(changes, sort_keys=True)),
            _cell(json.dumps(row["changes"], sort_keys=True)), _cell(json.dumps(row["metadata"], sort_keys=True)),
            _cell(row["correlation_id"]), row["prev_hash"], row["hash"],
        ])
        yield buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()


def _jsonl_lines(rows: Iterable[dict]) -> Iterator[str]:
    readable = _Readable()
    for row in rows:
        line = {name: row[name] for name in FIELDS}
        line["created_at"] = utc_iso(row["created_at"])
        line["summary"], line["changes_readable"] = readable(row)
        line["tenant"] = row["tenant__slug"] or ("platform" if row["tenant_id"] is None else "")
        yield json.dumps(line, sort_keys=True, separators=(",", ":"), ensure_ascii=True) + "\n"


def export_stream(queryset, fmt: str) -> Iterator[bytes]:
    """The queryset's entries (oldest first) as chunks of CSV or JSON Lines bytes."""
    rows = queryset.order_by("tenant_id", "seq").values(*_READ_FIELDS).iterator(chunk_size=CHUNK_ROWS)
    lines = _csv_lines(rows) if fmt == ExportFormat.CSV else _jsonl_lines(rows)
    pending, size = [], 0
    for line in lines:
        pending.append(line)
        size += len(line)
        if size >= _FLUSH_BYTES:
            yield "".join(pending).encode()
            pending, size = [], 0
    if pending:
        yield "".join(pending).encode()
