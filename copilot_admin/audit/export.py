"""Streaming the audit log as CSV or JSON Lines, in constant memory.

Rows come from the database in chunks (`.iterator(chunk_size)`: a server-side cursor on
PostgreSQL) and leave as byte chunks of about 64 KiB; nothing holds more than one chunk.
Times are UTC (ISO 8601 with `Z`; the CSV column says so). Each row carries its chain
position and hashes; a JSON Lines row carries every hashed field exactly as hashed, so a
recipient can recompute each entry's hash (see `copilot_admin.audit.chain`).
"""

import csv
import io
import json
from collections.abc import Iterable, Iterator

from copilot_admin.audit.chain import HASHED_FIELDS, utc_iso


class ExportFormat:
    CSV = "csv"
    JSONL = "jsonl"
    CHOICES = (CSV, JSONL)
    CONTENT_TYPES = {CSV: "text/csv; charset=utf-8", JSONL: "application/x-ndjson; charset=utf-8"}


FIELDS = (*HASHED_FIELDS, "hash")
CSV_COLUMNS = (
    "seq", "created_at_utc", "tenant_id", "actor_id", "actor_email", "actor_type", "remote_addr", "action",
    "object_type", "object_id", "object_repr", "outcome", "changes", "metadata", "correlation_id", "prev_hash", "hash",
)
CHUNK_ROWS = 2000
_FLUSH_BYTES = 64 * 1024
# A spreadsheet runs a cell starting with one of these as a formula.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _cell(value) -> str:
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(_FORMULA_START) else text


def _csv_lines(rows: Iterable[dict]) -> Iterator[str]:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(CSV_COLUMNS)
    for row in rows:
        writer.writerow([
            row["seq"], utc_iso(row["created_at"]), row["tenant_id"] or "", row["actor_id"] or "",
            _cell(row["actor_email"]), row["actor_type"], _cell(row["remote_addr"]), _cell(row["action"]),
            _cell(row["object_type"]), _cell(row["object_id"]), _cell(row["object_repr"]), row["outcome"],
            _cell(json.dumps(row["changes"], sort_keys=True)), _cell(json.dumps(row["metadata"], sort_keys=True)),
            _cell(row["correlation_id"]), row["prev_hash"], row["hash"],
        ])
        yield buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()


def _jsonl_lines(rows: Iterable[dict]) -> Iterator[str]:
    for row in rows:
        line = {name: row[name] for name in FIELDS}
        line["created_at"] = utc_iso(row["created_at"])
        yield json.dumps(line, sort_keys=True, separators=(",", ":"), ensure_ascii=True) + "\n"


def export_stream(queryset, fmt: str) -> Iterator[bytes]:
    """The queryset's entries (oldest first) as chunks of CSV or JSON Lines bytes."""
    rows = queryset.order_by("tenant_id", "seq").values(*FIELDS).iterator(chunk_size=CHUNK_ROWS)
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
