"""Signed checkpoints: every seal records the chain head signed with HMAC-SHA256 under the key
from the environment; `audit_verify --checkpoints FILE` checks the chain against checkpoints
kept outside the database and catches a truncated table and a rewritten chain, which the chain
alone (re-hashed, head updated) no longer shows."""

import hashlib
import hmac
import json
from pathlib import Path

import pytest
from django.db import connection

from copilot_admin.audit.chain import entry_hash
from copilot_admin.audit.checkpoints import (
    FORMAT,
    CheckpointFileError,
    audit_checkpoints,
    checkpoint_message,
    checkpoints_document,
    checkpoints_load,
)
from copilot_admin.audit.models import AuditChainHead, AuditCheckpoint, chain_key
from copilot_admin.audit.selectors import audit_chain_verify
from copilot_admin.audit.services import audit_event_record, audit_purge_expired, audit_seal
from tests.audit.conftest import entries
from tests.audit.test_tamper_evidence import tamper, verify

KEY = "test-checkpoint-key-0123456789abcdefghijklmnop"


@pytest.fixture(autouse=True)
def _checkpoint_key(settings):
    settings.AUDIT_CHECKPOINT_KEY = KEY
    settings.AUDIT_CHECKPOINT_KEY_ID = "test-2026"


def saved_checkpoints(world, tmp_path) -> str:
    """The tenant's checkpoints as downloaded, written to a file outside the database."""
    audit_seal(tenant_id=world.tenant.pk)
    document = checkpoints_document(tenant=world.tenant, checkpoints=reversed(list(audit_checkpoints(tenant=world.tenant))))
    path = tmp_path / "checkpoints.json"
    path.write_text(json.dumps(document))
    return str(path)


def more_entries(world, count=3):
    for i in range(count):
        audit_event_record(tenant=world.tenant, actor=None, action="test.event", object_type="company",
                           object_id=str(i), object_repr=f"later {i}")
    audit_seal(tenant_id=world.tenant.pk)


def test_each_seal_records_a_checkpoint_of_the_head_signed_with_the_configured_key(tenant_a):
    audit_seal(tenant_id=tenant_a.tenant.pk)
    before = audit_checkpoints(tenant=tenant_a.tenant).count()
    more_entries(tenant_a)
    latest = audit_checkpoints(tenant=tenant_a.tenant).first()
    head = AuditChainHead.objects.get(chain=chain_key(tenant_a.tenant.pk))
    assert audit_checkpoints(tenant=tenant_a.tenant).count() == before + 1
    assert (latest.sequence, latest.head_hash, latest.key_id) == (head.seq, head.hash, "test-2026")
    stamp = latest.at.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    message = checkpoint_message(chain=latest.chain, sequence=latest.sequence, head_hash=latest.head_hash, at=stamp)
    assert latest.signature == hmac.new(KEY.encode(), message, hashlib.sha256).hexdigest()


def test_a_seal_with_nothing_to_seal_records_no_checkpoint(tenant_a):
    audit_seal(tenant_id=tenant_a.tenant.pk)
    count = AuditCheckpoint.objects.for_tenant(tenant_a.tenant).count()
    audit_seal(tenant_id=tenant_a.tenant.pk)
    assert AuditCheckpoint.objects.for_tenant(tenant_a.tenant).count() == count


def test_intact_chain_matches_its_saved_checkpoints(tenant_a, tmp_path):
    path = saved_checkpoints(tenant_a, tmp_path)
    more_entries(tenant_a)
    code, out = verify("--checkpoints", path)
    assert code == 0, out
    assert f"ok      tenant:{tenant_a.tenant.pk}: " in out and "checkpoints match the chain" in out


def test_truncated_table_is_caught_by_the_saved_checkpoints(tenant_a, tenant_b, tmp_path):
    path = saved_checkpoints(tenant_a, tmp_path)
    # Someone with the database's keys wipes the log, its chain heads and its checkpoints.
    # (TRUNCATE fires no row trigger: the append-only trigger does not stop it.)
    if connection.vendor == "postgresql":
        tamper("TRUNCATE audit_auditentry, audit_auditchainhead, audit_auditcheckpoint")
    else:
        for table in ("audit_auditentry", "audit_auditchainhead", "audit_auditcheckpoint"):
            tamper(f"DELETE FROM {table}")
    code, out = verify("--tenant", "alpha", "--no-seal")
    assert code == 0, "the chain alone cannot tell an emptied log from a new one"
    code, out = verify("--checkpoints", path, "--no-seal")
    assert code == 2 and "missing" in out and f"BROKEN  tenant:{tenant_a.tenant.pk}" in out


def test_rewritten_chain_head_is_caught_by_the_saved_checkpoints(tenant_a, tmp_path):
    path = saved_checkpoints(tenant_a, tmp_path)
    # Alter entry 2 and re-hash the whole chain from there, head included: it verifies on its own.
    rows = list(entries(tenant_a).order_by("seq").values())
    previous = rows[0]["hash"]
    for row in rows[1:]:
        if row["seq"] == 2:
            row["object_repr"] = "Rewritten history"
        row["prev_hash"] = previous
        previous = entry_hash(row)
        tamper("UPDATE audit_auditentry SET object_repr = %s, prev_hash = %s, hash = %s WHERE id = %s",
               [row["object_repr"], row["prev_hash"], previous, row["id"]])
    AuditChainHead.objects.filter(chain=chain_key(tenant_a.tenant.pk)).update(hash=previous)
    assert audit_chain_verify(tenant_id=tenant_a.tenant.pk).ok
    code, out = verify("--checkpoints", path)
    assert code == 2 and "has another hash now (the chain was rewritten)" in out


def test_entries_cut_from_the_end_are_caught(tenant_a, tmp_path):
    more_entries(tenant_a)
    path = saved_checkpoints(tenant_a, tmp_path)
    head = AuditChainHead.objects.get(chain=chain_key(tenant_a.tenant.pk))
    tamper("DELETE FROM audit_auditentry WHERE tenant_id = %s AND seq > %s", [tenant_a.tenant.pk, head.seq - 2])
    AuditChainHead.objects.filter(pk=head.pk).update(
        seq=head.seq - 2, hash=entries(tenant_a).get(seq=head.seq - 2).hash)
    assert audit_chain_verify(tenant_id=tenant_a.tenant.pk).ok
    code, out = verify("--checkpoints", path, "--no-seal")
    assert code == 2 and f"entry {head.seq} is missing" in out and "behind checkpoint" in out


def test_a_forged_checkpoint_in_the_copy_is_refused(tenant_a, tmp_path):
    path = saved_checkpoints(tenant_a, tmp_path)
    document = json.loads(Path(path).read_text())
    document["results"][-1]["head_hash"] = "f" * 64
    Path(path).write_text(json.dumps(document))
    code, out = verify("--checkpoints", path)
    assert code == 2 and "bad signature" in out


def test_a_checkpoint_signed_under_another_key_is_reported_not_trusted(tenant_a, tmp_path, settings):
    path = saved_checkpoints(tenant_a, tmp_path)
    settings.AUDIT_CHECKPOINT_KEY_ID = "rotated-2027"
    code, out = verify("--checkpoints", path)
    assert code == 2 and "signed with key 'test-2026'" in out


def test_purged_entries_before_the_retention_checkpoint_are_accepted(tenant_a, tmp_path, settings):
    from datetime import timedelta

    from django.utils import timezone

    settings.AUDIT_RETENTION_MIN_DAYS, settings.AUDIT_RETENTION_DEFAULT_DAYS = 30, 90
    path = saved_checkpoints(tenant_a, tmp_path)
    saved = json.loads(Path(path).read_text())["results"]
    assert audit_purge_expired(tenant_id=tenant_a.tenant.pk, now=timezone.now() + timedelta(days=100)) > 0
    more_entries(tenant_a)
    code, out = verify("--checkpoints", path)
    assert code == 0, out
    assert f"{len(saved)} before the retention checkpoint" in out


@pytest.mark.parametrize("content,message", [
    ("not json", "not JSON"),
    (json.dumps({"format": "other"}), "not a checkpoints file"),
    (json.dumps({"format": FORMAT, "chain": "tenant:x", "results": []}), "unknown chain"),
    (json.dumps({"format": FORMAT, "chain": "tenant:1", "results": [{"sequence": "1"}]}), "checkpoint 0"),
])
def test_malformed_files_are_refused(content, message):
    with pytest.raises(CheckpointFileError, match=message):
        checkpoints_load(content)


def test_the_command_names_a_file_it_cannot_read(db, tmp_path):
    code, out = verify("--checkpoints", str(tmp_path / "absent.json"))
    assert code != 0 and "Cannot read" in out


def test_a_file_of_another_tenant_is_refused_for_a_named_tenant(tenant_a, tenant_b, tmp_path):
    path = saved_checkpoints(tenant_b, tmp_path)
    code, out = verify("--tenant", "alpha", "--checkpoints", path)
    assert code != 0 and "not of tenant 'alpha'" in out


