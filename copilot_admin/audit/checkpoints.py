"""Signed checkpoints of the audit chains, and their verification against copies kept elsewhere.

A checkpoint says "chain C held entries 1..N, the last with hash H, at moment T". It is signed
with HMAC-SHA256 under `AUDIT_CHECKPOINT_KEY` (named by `AUDIT_CHECKPOINT_KEY_ID`) over

    copilot-admin-audit-checkpoint/v1\\n<chain>\\n<sequence>\\n<head_hash>\\n<at, ISO 8601 UTC>

so whoever holds the key can check a copy without the database. The sealer records one with
each sealed batch. What the checkpoints prove, given copies saved outside the database:

- entries removed (the table truncated, the end cut off): the chain no longer holds the
  entry a checkpoint names;
- a chain rewritten (entries altered and every hash recomputed, the head updated so the chain
  verifies on its own): the entry a checkpoint names has another hash now;
- a forged checkpoint in the copy: its signature does not match.
"""

import hashlib
import hmac
import json
from dataclasses import dataclass, field
from datetime import datetime

from django.conf import settings
from django.db.models import QuerySet
from django.utils.dateparse import parse_datetime

from copilot_admin.audit.chain import utc_iso
from copilot_admin.audit.models import AuditChainHead, AuditCheckpoint, AuditEntry, chain_key

FORMAT = "copilot-admin-audit-checkpoints/v1"
_SIGNED_PREFIX = "copilot-admin-audit-checkpoint/v1"


def checkpoint_message(*, chain: str, sequence: int, head_hash: str, at: str) -> bytes:
    return "\n".join((_SIGNED_PREFIX, chain, str(sequence), head_hash, at)).encode()


def checkpoint_sign(*, chain: str, sequence: int, head_hash: str, at: str, key: str | None = None) -> str:
    """The hex HMAC-SHA256 of the checkpoint under `key` (default: the configured key)."""
    key = settings.AUDIT_CHECKPOINT_KEY if key is None else key
    return hmac.new(key.encode(), checkpoint_message(chain=chain, sequence=sequence, head_hash=head_hash, at=at),
                    hashlib.sha256).hexdigest()


def checkpoint_record(*, tenant_id: int | None, sequence: int, head_hash: str, at: datetime) -> AuditCheckpoint:
    """Record a signed checkpoint of a chain's head (the sealer calls it inside its
    transaction, under the chain's lock, so checkpoints of one chain never go backwards)."""
    chain = chain_key(tenant_id)
    stamp = utc_iso(at)
    return AuditCheckpoint.unscoped_objects.create(
        chain=chain, tenant_id=tenant_id, sequence=sequence, head_hash=head_hash, at=at,
        signature=checkpoint_sign(chain=chain, sequence=sequence, head_hash=head_hash, at=stamp),
        key_id=settings.AUDIT_CHECKPOINT_KEY_ID,
    )


# -- reads ------------------------------------------------------------------------------------

def audit_checkpoints(*, tenant) -> QuerySet[AuditCheckpoint]:
    """The tenant's checkpoints, newest first."""
    return AuditCheckpoint.objects.for_tenant(tenant).order_by("-id")


def checkpoint_as_dict(checkpoint: AuditCheckpoint) -> dict:
    return {
        "sequence": checkpoint.sequence, "head_hash": checkpoint.head_hash, "at": utc_iso(checkpoint.at),
        "signature": checkpoint.signature, "key_id": checkpoint.key_id,
    }


def checkpoints_document(*, tenant, checkpoints) -> dict:
    """The downloadable file: what `audit_verify --checkpoints` reads back."""
    return {
        "format": FORMAT, "tenant": tenant.slug, "chain": chain_key(tenant.pk),
        "results": [checkpoint_as_dict(checkpoint) for checkpoint in checkpoints],
    }


# -- verification against a saved copy -------------------------------------------------------------

@dataclass
class CheckpointReport:
    """Checkpoints of one chain checked against the database: how many matched, which failed."""

    chain: str
    checked: int = 0
    purged: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


class CheckpointFileError(ValueError):
    """The file is not a checkpoints document."""


def checkpoints_load(text: str) -> tuple[str, list[dict]]:
    """(chain, checkpoints) of a saved document; `CheckpointFileError` when malformed."""
    try:
        document = json.loads(text)
    except ValueError as exc:
        raise CheckpointFileError(f"not JSON: {exc}") from None
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise CheckpointFileError(f"not a checkpoints file (format must be {FORMAT!r})")
    chain, items = document.get("chain"), document.get("results")
    if not isinstance(chain, str) or not isinstance(items, list):
        raise CheckpointFileError("`chain` and `results` (the checkpoints) are required")
    chain_tenant_id(chain)
    required = {"sequence": int, "head_hash": str, "at": str, "signature": str, "key_id": str}
    for position, item in enumerate(items):
        if not isinstance(item, dict) or any(not isinstance(item.get(k), t) for k, t in required.items()):
            raise CheckpointFileError(f"checkpoint {position}: needs {', '.join(required)}")
    return chain, items


def chain_tenant_id(chain: str) -> int | None:
    if chain == "platform":
        return None
    prefix, _, number = chain.partition(":")
    if prefix != "tenant" or not number.isdigit():
        raise CheckpointFileError(f"unknown chain {chain!r}")
    return int(number)


def checkpoints_verify(*, chain: str, checkpoints: list[dict]) -> CheckpointReport:
    """Check saved checkpoints against the chain in the database: each one's signature (with
    the configured key; one signed under another key id is reported, not trusted), then that
    the chain still holds the entry it names with the same hash, and that the chain head has
    not gone back behind it. Entries removed by the retention purge are accepted up to the
    purge checkpoint (its last hash must match where a checkpoint names that very entry)."""
    tenant_id = chain_tenant_id(chain)
    report = CheckpointReport(chain=chain)
    head = AuditChainHead.objects.filter(chain=chain).first()
    purged_through = head.purged_through_seq if head else 0
    entries = AuditEntry.objects.for_chain(tenant_id)
    wanted = [item["sequence"] for item in checkpoints if item["sequence"] > purged_through]
    hashes = dict(entries.filter(seq__in=wanted).values_list("seq", "hash")) if wanted else {}
    for item in checkpoints:
        sequence, head_hash, at = item["sequence"], item["head_hash"], item["at"]
        name = f"checkpoint {sequence} ({at})"
        if item["key_id"] != settings.AUDIT_CHECKPOINT_KEY_ID:
            report.problems.append(f"{name}: signed with key {item['key_id']!r}, not the configured key "
                                   f"{settings.AUDIT_CHECKPOINT_KEY_ID!r}: cannot check its signature")
            continue
        expected = checkpoint_sign(chain=chain, sequence=sequence, head_hash=head_hash, at=at)
        if not hmac.compare_digest(expected, item["signature"]) or parse_datetime(at) is None:
            report.problems.append(f"{name}: bad signature (the copy was altered or forged)")
            continue
        if sequence <= purged_through:
            if sequence == purged_through and head.purged_last_hash != head_hash:
                report.problems.append(f"{name}: the retention checkpoint records another hash for entry {sequence}")
            report.purged += 1
            continue
        if sequence not in hashes:
            report.problems.append(f"{name}: entry {sequence} is missing from the chain (entries removed)")
        elif hashes[sequence] != head_hash:
            report.problems.append(f"{name}: entry {sequence} has another hash now (the chain was rewritten)")
        else:
            report.checked += 1
    if head is not None and checkpoints:
        highest = max(item["sequence"] for item in checkpoints)
        if head.seq < highest:
            report.problems.append(f"the chain head records entry {head.seq}, behind checkpoint {highest} "
                                   "(entries removed from the end)")
    elif head is None and checkpoints:
        report.problems.append("the chain head is missing (the chain was removed)")
    return report
