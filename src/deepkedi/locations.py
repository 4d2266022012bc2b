"""Where files live: a local path, or any filesystem fsspec knows, by URL.

A plain path and a ``file://`` URL are local; ``s3://bucket/prefix`` (s3fs),
``gs://`` (gcsfs), ``memory://`` and the rest are fsspec filesystems, opened only
when asked for. Messages name the protocol, never the URL: a URL may carry
credentials. fsspec itself is imported only for a URL.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

__all__ = ["filesystem", "is_url", "protocol", "storage_location"]

#: ``scheme://`` or a chained ``a::b://`` URL; anything else is a local path.
_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*(::|://)")
_LOCAL_PROTOCOLS = frozenset({"file", "local"})


def is_url(text: str | Path) -> bool:
    """Whether ``text`` is a URL (``scheme://…`` or ``a::b://…``) rather than a local path."""
    return isinstance(text, str) and bool(_URL.match(text))


def protocol(url: str) -> str:
    """The protocol of an fsspec URL (``s3`` of ``s3://b/k``, ``simplecache`` of ``simplecache::s3://…``)."""
    return url.split("://", 1)[0].split("::", 1)[0].lower()


def storage_location(text: str | Path) -> Path | str:
    """What ``--storage`` names: a local folder (a :class:`~pathlib.Path`, made absolute) or an fsspec URL.

    A plain path and a ``file://`` URL are a local folder. Any other URL is returned as
    given once fsspec knows its protocol and the package that implements it is
    installed; nothing is contacted.

    Raises
    ------
    ValueError
        An unknown protocol, or one whose package is missing (the message, one line,
        names the protocol only: a URL may carry credentials).
    """
    if isinstance(text, Path) or not _URL.match(text):
        return Path(text).expanduser().resolve()
    if protocol(text) in _LOCAL_PROTOCOLS and "::" not in text:
        return Path(filesystem(text)[1] or "/").expanduser().resolve()
    filesystem(text)
    return text


def filesystem(url: str) -> tuple[Any, str]:
    """fsspec's filesystem and root path for ``url``; :class:`ValueError` (one line) if it cannot be had."""
    scheme = protocol(url)
    try:
        import fsspec
        from fsspec.registry import known_implementations
    except ImportError:
        raise ValueError(f"storage protocol {scheme!r} needs fsspec: pip install fsspec") from None
    try:
        return fsspec.url_to_fs(url)
    except ImportError:
        hint = known_implementations.get(scheme, {}).get("err") or "install the package that provides it"
        raise ValueError(f"storage protocol {scheme!r} is not available: {hint}") from None
    except ValueError as exc:
        if "Protocol not known" in str(exc) or scheme not in known_implementations:
            raise ValueError(f"unknown storage protocol {scheme!r} (fsspec knows no such filesystem)") from None
        raise ValueError(f"storage URL for {scheme!r} not understood ({type(exc).__name__})") from None
    except Exception as exc:  # noqa: BLE001 - a third-party filesystem's constructor fails in its own ways
        raise ValueError(f"storage protocol {scheme!r} cannot be opened ({type(exc).__name__})") from None
