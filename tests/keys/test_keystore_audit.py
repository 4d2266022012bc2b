"""deepkedi.keys.keystore.audit: the HMAC chain, its head, and verification, without a database.

The known answers (canonical bytes, MACs) are in tests/vectors/test_keystore_vectors.py.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import pytest

from deepkedi.keys.keystore.audit import (
    AuditEntry,
    _audit_row_bytes,
    _chain_rows,
    _entry,
    _Head,
    _head_json,
    _verify_chain,
)

KEY = bytes(range(32))
EVENTS = [
    ("init", None, None, {"kek_version": 1, "kdf": "hkdf-sha256"}),
    ("new", "aa" * 16, None, {"label": "study 7"}),
    ("get", "aa" * 16, "bb" * 32, {}),
    ("revoke", "aa" * 16, None, {}),
]

Rows = list[dict[str, Any]]


def _trail(events: list = EVENTS) -> tuple[Rows, str]:
    """Rows as the keystore stores them, and the head it stores with them."""
    head = _Head(0, 0, bytes(32))
    rows = _chain_rows(KEY, head, "alice", events)
    assert head == _Head(0, 0, bytes(32))  # the caller moves the head, once the rows are stored
    return rows, _head_json(KEY, _Head(len(rows), rows[-1]["seq"], rows[-1]["mac"]))


def _stored(rows: Rows) -> list[SimpleNamespace]:
    """The rows as the database hands them back (attribute access)."""
    return [SimpleNamespace(**row) for row in rows]


def test_each_mac_chains_the_previous_mac_and_the_canonical_row() -> None:
    rows, _head = _trail()
    assert [row["seq"] for row in rows] == [1, 2, 3, 4]
    prev = bytes(32)
    for row, (operation, key_id, file_sha256, details) in zip(rows, EVENTS, strict=True):
        assert (row["actor"], row["operation"], row["key_id"], row["file_sha256"]) == (
            "alice",
            operation,
            key_id,
            file_sha256,
        )
        assert json.loads(row["details"]) == details and row["time"].endswith("Z")
        data = prev + _audit_row_bytes(row["seq"], row["time"], "alice", operation, key_id, file_sha256, details)
        assert row["mac"] == hmac.new(KEY, data, hashlib.sha256).digest()
        prev = row["mac"]


def test_a_chain_continued_from_its_head_verifies() -> None:
    first, _ = _trail(EVENTS[:2])
    head = _Head(2, 2, first[-1]["mac"])
    second = _chain_rows(KEY, head, "bob", EVENTS[2:])
    assert [row["seq"] for row in second] == [3, 4]
    head_value = _head_json(KEY, _Head(4, 4, second[-1]["mac"]))
    assert _verify_chain(KEY, _stored(first + second), head_value) == (True, None)
    assert _verify_chain(KEY, [], _head_json(KEY, _Head(0, 0, bytes(32)))) == (True, None)


def _edit_details(rows: Rows) -> None:
    rows[1]["details"] = json.dumps({"label": "study 8"})


def _swap(rows: Rows) -> None:
    rows[1], rows[2] = rows[2], rows[1]


def _renumber(rows: Rows) -> None:
    del rows[1]
    for seq, row in enumerate(rows, 1):
        row["seq"] = seq


@pytest.mark.parametrize(
    "tamper, first_bad",
    [
        (_edit_details, 2),
        (lambda rows: rows.__setitem__(1, {**rows[1], "actor": "mallory"}), 2),
        (lambda rows: rows.__setitem__(2, {**rows[2], "details": "[1, 2]"}), 3),  # JSON, not an object
        (lambda rows: rows.__setitem__(2, {**rows[2], "details": "not json"}), 3),
        (lambda rows: rows.__delitem__(1), 2),  # a gap in the sequence
        (_swap, 2),
        (_renumber, 2),  # no gap, but the chain breaks
        (lambda rows: rows.__delitem__(3), 4),  # a cut tail: the head names row 4
    ],
)
def test_tampering_names_the_first_bad_row(tamper: Callable[[Rows], None], first_bad: int) -> None:
    rows, head = _trail()
    tamper(rows)
    assert _verify_chain(KEY, _stored(rows), head) == (False, first_bad)


def test_a_forged_or_damaged_head_fails_after_the_last_row() -> None:
    rows, head = _trail()
    doc = json.loads(head)
    forged = json.dumps({**doc, "count": 5, "last_seq": 5})  # without the audit key, the MAC cannot follow
    for value in (forged, "not json", json.dumps({"count": 4})):
        assert _verify_chain(KEY, _stored(rows), value) == (False, 5)
    assert _verify_chain(bytes(32), _stored(rows), head) == (False, 1)  # another keystore's audit key


def test_an_unreadable_row_still_lists() -> None:
    rows, _head = _trail()
    entry = _entry(SimpleNamespace(**{**rows[0], "details": "[" * 100_000 + "]" * 100_000}))
    assert entry == AuditEntry(1, rows[0]["time"], "alice", "init", None, None, {"unreadable": True})
    assert _entry(SimpleNamespace(**rows[2])).to_dict()["file_sha256"] == "bb" * 32
