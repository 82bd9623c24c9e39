"""`core.memo.BoundedMemo`: the hot path's per-process facts and hints stay within a bound."""

import pytest

from copilot_admin.access import tokens
from copilot_admin.copilot import services as copilot_services
from copilot_admin.core.memo import DEFAULT_SIZE, BoundedMemo
from copilot_admin.identity import selectors as identity_selectors
from copilot_admin.identity import services as identity_services


def test_a_memo_keeps_what_it_is_told_up_to_its_size():
    memo = BoundedMemo(size=3)
    for key in "abc":
        assert memo.remember(key, key.upper()) == key.upper()
    assert memo == {"a": "A", "b": "B", "c": "C"}


def test_a_full_memo_is_emptied_before_a_new_key():
    memo = BoundedMemo(size=3)
    for key in "abc":
        memo.remember(key, 1)
    memo.remember("d", 4)
    assert memo == {"d": 4}


def test_a_full_memo_keeps_its_entries_when_a_known_key_changes():
    memo = BoundedMemo(size=2)
    memo.remember("a", 1)
    memo.remember("b", 2)
    memo.remember("a", 3)
    assert memo == {"a": 3, "b": 2}


def test_a_memo_holds_at_least_one_entry():
    with pytest.raises(ValueError):
        BoundedMemo(size=0)


@pytest.mark.parametrize("memo", [
    tokens._owners, identity_selectors._key_tenants, identity_selectors._acting_hints,
    identity_services._used_windows, copilot_services._chain_hints,
])
def test_every_per_process_memo_of_the_hot_path_is_bounded(memo):
    assert isinstance(memo, BoundedMemo) and memo.size == DEFAULT_SIZE
