"""The suite's guard against order-dependent setup errors: a transactional test without
serialized_rollback leaves post_migrate's re-created content types behind, and the next
serialized_rollback test fails to restore its captured rows (tests/conftest.py)."""

from types import SimpleNamespace

import pytest

from tests.conftest import transactional_tests_without_serialized_rollback


def fake_item(nodeid, marker=None, fixtures=()):
    return SimpleNamespace(
        nodeid=nodeid, fixturenames=list(fixtures),
        get_closest_marker=lambda name: marker if name == "django_db" else None,
    )


def test_transactional_tests_must_restore_the_migrated_rows():
    items = [
        fake_item("plain"),
        fake_item("in-transaction", pytest.mark.django_db.mark),
        fake_item("flushes", pytest.mark.django_db(transaction=True).mark),
        fake_item("flushes-positional", pytest.mark.django_db(True).mark),
        fake_item("resets", pytest.mark.django_db(reset_sequences=True).mark),
        fake_item("fixture", fixtures=["transactional_db"]),
        fake_item("live", fixtures=["live_server"]),
        fake_item("restores", pytest.mark.django_db(transaction=True, serialized_rollback=True).mark),
        fake_item("restores-by-fixture", fixtures=["live_server", "django_db_serialized_rollback"]),
    ]
    assert transactional_tests_without_serialized_rollback(items) == [
        "flushes", "flushes-positional", "resets", "fixture", "live",
    ]
