"""Bounded JSON: size and nesting checked before parsing, so hostile documents fail as ValueError."""

from __future__ import annotations

import json

import pytest

from deepkedi._json import DEFAULT_MAX_DEPTH, JSONLimitError, loads_bounded, nesting_depth


@pytest.mark.parametrize(
    "text, depth",
    [
        (b"1", 0),
        (b"[]", 1),
        (b'{"a": [1, {"b": []}]}', 4),
        (b'{"a": "[[[[{{{{"}', 1),  # brackets inside strings do not nest
        (b'["\\"[[[", "\\\\", []]', 2),  # escaped quotes and backslashes end strings where JSON says
        (b"[[]][[[]]]", 3),
    ],
)
def test_nesting_depth(text: bytes, depth: int) -> None:
    assert nesting_depth(text) == depth


def test_documents_within_limits_parse_as_json_does() -> None:
    doc = {"k": [1, 2.5, None, True, "x\u00e9\n", {"n": [[[]]]}]}
    text = json.dumps(doc)
    assert loads_bounded(text) == doc
    assert loads_bounded(text.encode("utf-8")) == doc
    assert loads_bounded(memoryview(text.encode("utf-8"))) == doc
    nested = "[" * DEFAULT_MAX_DEPTH + "]" * DEFAULT_MAX_DEPTH
    assert loads_bounded(nested) == json.loads(nested)


@pytest.mark.parametrize("levels", [DEFAULT_MAX_DEPTH + 1, 100_000])
def test_deep_nesting_is_refused_before_parsing(levels: int) -> None:
    # 100 000 levels make json.loads raise RecursionError: the bound must answer first, as a ValueError.
    for text in ("[" * levels + "]" * levels, '{"a":' * levels + "1" + "}" * levels, "[" * levels):
        with pytest.raises(JSONLimitError, match="nested"):
            loads_bounded(text)


def test_size_is_refused_before_parsing() -> None:
    with pytest.raises(JSONLimitError, match="bytes"):
        loads_bounded(b'"' + b"x" * 100 + b'"', max_bytes=50)
    assert loads_bounded(b'"' + b"x" * 48 + b'"', max_bytes=50) == "x" * 48


def test_malformed_text_is_a_value_error() -> None:
    for bad in (b"{", b"\xff\xfe", b"[1,]", b""):
        with pytest.raises(ValueError):
            loads_bounded(bad)
