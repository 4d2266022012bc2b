"""Helpers for tests of folder runs: a tree's visible files, and waiting for a killed process group."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path


def visible_files(folder: Path) -> dict[str, bytes]:
    """Every visible file under ``folder`` by relative POSIX path, with its bytes.

    Names starting with a dot (the manifest, part files) are left out, as folder runs leave them out.
    """
    return {
        p.relative_to(folder).as_posix(): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and not any(part.startswith(".") for part in p.relative_to(folder).parts)
    }


def wait_until_gone(group: int, timeout: float = 30.0) -> None:
    """Until no process of ``group`` is left (not even unreaped): part files they left are then stale.

    Raises ``AssertionError`` (after a SIGKILL to what is left) when one outlives ``timeout``.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.killpg(group, 0)
        except ProcessLookupError:
            return
        time.sleep(0.02)
    os.killpg(group, signal.SIGKILL)
    raise AssertionError(f"processes of group {group} outlived {timeout:g} s")
