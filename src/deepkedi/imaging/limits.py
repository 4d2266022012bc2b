"""How many bytes a file may decode to: the guard against decompression bombs.

A few megabytes of gzip, deflate, JPEG or TIFF can claim gigabytes of pixels
(DEFLATE alone expands up to 1032-fold), and a reader that believes them
exhausts memory. Every reader that decodes pixels into memory (``.nii.gz``,
``.mgz``, PNG, TIFF, JPEG, compressed or deflated DICOM, 1-bit DICOM) therefore
asks :func:`check_decoded_size` first, from the sizes its file's header
declares, and stops inflating a stream whose header cannot be trusted
(:func:`inflated_size_within`). Files whose pixels are memory-mapped where they
lie (``.nii``, ``.mgh``, ``.npy``, uncompressed DICOM) are not decoded, hence
not limited: they can never hold more pixel bytes than the file has.

The limit in force is a context-scoped setting, so that every reader sees it
without each caller threading it through:

>>> from deepkedi.imaging import read_image
>>> from deepkedi.imaging.limits import decoded_size_limit
>>> with decoded_size_limit(8 << 30):          # doctest: +SKIP
...     image = read_image("large_fmri.nii.gz")

(``read_image(path, max_decoded_size=...)`` does the same for one call.)

When no limit is set, the default policy applies: at most
:data:`DEFAULT_MAX_DECODED_SIZE` bytes, and a file that decodes past
:data:`DEFAULT_EXPANSION_FLOOR` bytes may expand at most
:data:`DEFAULT_MAX_EXPANSION`-fold. Real medical images compress 2- to 10-fold;
the expansion bound is what stops a small bomb whose claimed size stays under
the absolute limit. An explicit limit is exactly that many bytes, whatever the
file's size.

A caller whose working memory is a multiple of the decoded image (a measure
that keeps float64 copies, a filter that writes a float32 result) gives that
multiple to :func:`decoded_size_limit` as ``memory_factor``: the default policy
then also keeps ``memory_factor`` times the decoded size within
:data:`DEFAULT_WORKING_MEMORY`, so that the default settings stay under 1 GiB
resident for any input. An explicit limit still overrides it exactly.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import BinaryIO

from deepkedi.errors import InputTooLargeError

__all__ = [
    "DEFAULT_EXPANSION_FLOOR",
    "DEFAULT_MAX_DECODED_SIZE",
    "DEFAULT_MAX_EXPANSION",
    "DEFAULT_WORKING_MEMORY",
    "allowed_decoded_size",
    "check_decoded_size",
    "current_limit",
    "decoded_size_limit",
    "format_size",
    "inflated_size_within",
    "parse_size",
]

#: Most bytes a file may decode to under the default policy: 4 GiB.
DEFAULT_MAX_DECODED_SIZE = 4 << 30
#: Under the default policy, a file may decode to this many bytes whatever its size: 256 MiB
#: (a 512 x 512 x 1024 8-bit label volume, which gzip shrinks several hundredfold).
DEFAULT_EXPANSION_FLOOR = 256 << 20
#: Under the default policy, past the floor, how many times its own size a file may decode to.
DEFAULT_MAX_EXPANSION = 32

#: Under the default policy, the working memory a caller's ``memory_factor`` times the decoded
#: size may take: 768 MiB, which with the process itself (about 130 MiB with NumPy and SciPy
#: loaded) stays under 1 GiB resident.
DEFAULT_WORKING_MEMORY = 768 << 20

#: The limit set by :func:`decoded_size_limit`; None means the default policy.
_LIMIT: ContextVar[int | None] = ContextVar("deepkedi_max_decoded_size", default=None)
#: Bytes of working memory per decoded byte, set by :func:`decoded_size_limit`; None: not bounded.
_FACTOR: ContextVar[float | None] = ContextVar("deepkedi_memory_factor", default=None)

_UNITS = {"": 1, "b": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}
_SIZE = re.compile(r"\s*(\d+(?:\.\d*)?)\s*([kmgt]?)(?:i?b)?\s*", re.IGNORECASE)


def parse_size(text: str) -> int:
    """A byte count from ``"4G"``, ``"4GiB"``, ``"512M"``, ``"1.5g"`` or ``"1073741824"``.

    Suffixes K, M, G and T are binary (powers of 1024), with or without a
    trailing ``B`` or ``iB``.

    Raises
    ------
    ValueError
        Not a size, or zero.
    """
    match = _SIZE.fullmatch(text)
    if match is None:
        raise ValueError(f"{text!r} is not a size; write bytes or a number with K, M, G or T (512M, 4GiB)")
    nbytes = int(float(match.group(1)) * _UNITS[match.group(2).lower()])
    if nbytes <= 0:
        raise ValueError(f"{text!r}: the size must be positive")
    return nbytes


def format_size(nbytes: int) -> str:
    """``nbytes`` for a message: ``"512 MiB"``, ``"3.7 GiB"``, ``"800 bytes"``."""
    if nbytes < 1 << 10:
        return f"{nbytes} bytes"
    for unit, shift in (("TiB", 40), ("GiB", 30), ("MiB", 20), ("KiB", 10)):
        if nbytes >= 1 << shift:
            value = nbytes / (1 << shift)
            return f"{value:.0f} {unit}" if value == int(value) or value >= 100 else f"{value:.1f} {unit}"
    raise AssertionError("unreachable")


@contextmanager
def decoded_size_limit(nbytes: int | None, *, memory_factor: float | None = None) -> Iterator[None]:
    """Within the block, refuse files that would decode to more than ``nbytes`` bytes.

    ``None`` restores the default policy; ``memory_factor`` (the caller's working
    memory per decoded byte) makes the default policy also refuse files past
    ``DEFAULT_WORKING_MEMORY / memory_factor`` bytes, and has no effect on an
    explicit ``nbytes``. Scoped to the current thread or task
    (a :class:`~contextvars.ContextVar`), and restored on leaving the block; a
    thread started inside the block starts from the default policy unless it runs
    in a copy of the caller's context (:func:`contextvars.copy_context`).

    Raises
    ------
    ValueError
        ``nbytes`` or ``memory_factor`` is not positive.
    """
    if nbytes is not None and nbytes <= 0:
        raise ValueError(f"the decoded-size limit must be positive, not {nbytes}")
    if memory_factor is not None and not memory_factor > 0:
        raise ValueError(f"the memory factor must be positive, not {memory_factor}")
    token = _LIMIT.set(nbytes)
    factor_token = _FACTOR.set(memory_factor)
    try:
        yield
    finally:
        _FACTOR.reset(factor_token)
        _LIMIT.reset(token)


def current_limit() -> int | None:
    """The limit set by :func:`decoded_size_limit` around the caller, or None for the default policy."""
    return _LIMIT.get()


def allowed_decoded_size(file_size: int) -> int:
    """How many bytes a file of ``file_size`` bytes may decode to under the limit in force."""
    limit = _LIMIT.get()
    if limit is not None:
        return limit
    allowed = min(DEFAULT_MAX_DECODED_SIZE, max(DEFAULT_EXPANSION_FLOOR, DEFAULT_MAX_EXPANSION * file_size))
    factor = _FACTOR.get()
    if factor is not None:
        allowed = min(allowed, int(DEFAULT_WORKING_MEMORY / factor))
    return allowed


def _refusal(path: Path, nbytes: int, file_size: int, *, at_least: bool) -> InputTooLargeError:
    allowed = allowed_decoded_size(file_size)
    amount = f"more than {format_size(allowed)}" if at_least else format_size(nbytes)
    if _LIMIT.get() is not None:
        rule = f"the limit is {format_size(allowed)}"
    else:
        rule = (
            f"the default limit is {format_size(allowed)} for a {format_size(file_size)} file: "
            f"{DEFAULT_MAX_EXPANSION} times its size, at least {format_size(DEFAULT_EXPANSION_FLOOR)}, "
            f"at most {format_size(DEFAULT_MAX_DECODED_SIZE)}"
        )
        factor = _FACTOR.get()
        if factor is not None and allowed == int(DEFAULT_WORKING_MEMORY / factor):
            rule = (
                f"the default limit here is {format_size(allowed)}: this needs about {factor:g} times "
                f"the decoded size in memory, kept within {format_size(DEFAULT_WORKING_MEMORY)}"
            )
    return InputTooLargeError(
        f"{path}: would decode to {amount} ({rule}); "
        "if the file is trusted, raise the limit with --max-decoded-size SIZE or KEDI_MAX_DECODED"
    )


def check_decoded_size(path: Path, nbytes: int, *, file_size: int) -> None:
    """Refuse, before decoding, a file whose header says it decodes to more than allowed.

    Parameters
    ----------
    path
        The file, named in the message.
    nbytes
        Bytes its pixels will occupy once decoded, from its header.
    file_size
        The file's own size in bytes (the default policy bounds the expansion).

    Raises
    ------
    InputTooLargeError
        ``nbytes`` is over :func:`allowed_decoded_size`.
    """
    if nbytes > allowed_decoded_size(file_size):
        raise _refusal(path, nbytes, file_size, at_least=False)


#: Output taken from the inflater at a time while measuring a stream.
_INFLATE_CHUNK = 1 << 20


def inflated_size_within(path: Path, stream: BinaryIO, *, wbits: int, file_size: int) -> int:
    """Inflate the rest of ``stream`` without keeping it, and return its inflated size.

    For streams whose headers do not declare their size (a deflated DICOM data set):
    memory stays at one chunk whatever the stream claims, and inflation stops as soon
    as the output passes the limit.

    Parameters
    ----------
    wbits
        As for :func:`zlib.decompressobj`: ``-15`` raw deflate, ``31`` gzip.

    Raises
    ------
    InputTooLargeError
        The stream inflates to more than :func:`allowed_decoded_size`.
    zlib.error
        The stream is not valid deflate data.
    """
    allowed = allowed_decoded_size(file_size)
    inflater = zlib.decompressobj(wbits=wbits)
    total = 0
    while not inflater.eof:
        chunk = inflater.unconsumed_tail or stream.read(_INFLATE_CHUNK)
        # An empty chunk still drains output the inflater holds back past max_length.
        inflated = len(inflater.decompress(chunk, _INFLATE_CHUNK))
        if not chunk and not inflated:
            break  # the stream ends early: the reader that parses it will say so
        total += inflated
        if total > allowed:
            raise _refusal(path, total, file_size, at_least=True)
    return total
