"""JSON from untrusted sources, bounded in size and nesting before it is parsed.

Key files, keystore fields, key exports and container metadata are JSON that
an attacker may have written. :func:`json.loads` recurses once per nesting
level, so ``[[[[...]]]]`` a few thousand levels deep raises
:class:`RecursionError` (a traceback, not an error message), and a huge
document costs memory before anything is checked. :func:`loads_bounded`
refuses both before :mod:`json` sees the text.
"""

from __future__ import annotations

import json
import re
from typing import Any

import numpy as np

__all__ = ["DEFAULT_MAX_BYTES", "DEFAULT_MAX_DEPTH", "JSONLimitError", "loads_bounded"]

#: Nesting deeper than any document deepkedi writes (its deepest is about 6 levels).
DEFAULT_MAX_DEPTH = 64
#: Larger than any document deepkedi writes except key exports of many keys (which pass their own limit).
DEFAULT_MAX_BYTES = 16 << 20

# A JSON string, escapes included (the "unrolled loop" form: linear time, no backtracking).
_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_NOT_BRACKET = re.compile(rb"[^\[\]{}]+")
_STEP = np.zeros(256, dtype=np.int64)
_STEP[[ord("["), ord("{")]] = 1
_STEP[[ord("]"), ord("}")]] = -1


class JSONLimitError(ValueError):
    """The JSON text is larger or nested deeper than allowed (a :class:`ValueError`, as a syntax error is)."""


def nesting_depth(data: bytes) -> int:
    """The deepest nesting of arrays and objects in the JSON text ``data`` (brackets in strings do not count).

    Examples
    --------
    >>> nesting_depth(b'{"a": [1, {"b": "[[["}]}')
    3
    """
    brackets = _NOT_BRACKET.sub(b"", _STRING.sub(b"", data))
    if not brackets:
        return 0
    return int(np.cumsum(_STEP[np.frombuffer(brackets, dtype=np.uint8)]).max(initial=0))


def loads_bounded(
    data: bytes | bytearray | memoryview | str,
    *,
    max_bytes: int = DEFAULT_MAX_BYTES,
    max_depth: int = DEFAULT_MAX_DEPTH,
) -> Any:
    """Parse the JSON text ``data`` after checking its size and nesting depth.

    Parameters
    ----------
    data
        UTF-8 bytes or a string.
    max_bytes
        Longest text accepted, in bytes (UTF-8).
    max_depth
        Deepest nesting of arrays and objects accepted.

    Raises
    ------
    JSONLimitError
        ``data`` is longer than ``max_bytes`` or nested deeper than ``max_depth``.
    ValueError
        ``data`` is not UTF-8 or not JSON (:class:`UnicodeDecodeError`,
        :class:`json.JSONDecodeError`). Callers turn every ``ValueError`` into
        their own error naming the file.

    Examples
    --------
    >>> loads_bounded(b'{"a": [1, 2]}')
    {'a': [1, 2]}
    >>> loads_bounded("[" * 100 + "]" * 100)
    Traceback (most recent call last):
    ...
    deepkedi._json.JSONLimitError: JSON nested 100 levels deep (at most 64 accepted)
    """
    raw = data.encode("utf-8") if isinstance(data, str) else bytes(data)
    if len(raw) > max_bytes:
        raise JSONLimitError(f"JSON of {len(raw)} bytes (at most {max_bytes} accepted)")
    depth = nesting_depth(raw)
    if depth > max_depth:
        raise JSONLimitError(f"JSON nested {depth} levels deep (at most {max_depth} accepted)")
    return json.loads(raw.decode("utf-8"))
