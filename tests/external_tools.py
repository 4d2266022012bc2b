"""External programs the tests call (DCMTK, dicom3tools, GDCM, the PostgreSQL server), found in one way.

Every test that needs one gets its path from :func:`require_tool`. Where the program is not
on ``PATH`` the test is skipped on a developer's machine, but under ``CI=true`` it fails:
CI installs every tool (`make setup`), so a missing one is a broken setup, and a suite that
skipped its conformance checks must not come out green.
"""

from __future__ import annotations

import os
import shutil

import pytest

__all__ = ["in_ci", "require_tool", "unavailable"]


def in_ci() -> bool:
    """True when ``CI`` is ``true`` (any case): every test must run, none may skip."""
    return os.environ.get("CI", "").lower() == "true"


def unavailable(message: str) -> None:
    """Stop the test because something it needs is missing: a failure under CI, a skip elsewhere."""
    if in_ci():
        pytest.fail(f"{message} (CI=true: every test must run)", pytrace=False)
    pytest.skip(message)


def require_tool(name: str, *, install: str) -> str:
    """The path of the program ``name``; see :func:`unavailable` when it is not on ``PATH``.

    ``install`` says how to get it, e.g. ``"DCMTK (make setup)"``.
    """
    path = shutil.which(name)
    if path is None:
        unavailable(f"{name} is not on PATH: install {install}")
    return path  # type: ignore[return-value]  # unavailable() never returns
