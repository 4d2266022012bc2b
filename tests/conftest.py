"""Fixtures every test folder may use, and the rule that CI skips nothing.

Under ``CI=true`` a skipped test or test module fails instead: a missing tool
(DCMTK, dciodvfy, PostgreSQL, an optional extra) is an unverified claim, and CI
installs everything the suite needs (`make setup`). Tests that need an external program
get it from ``external_tools.require_tool``, which fails outright under ``CI=true``.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from external_tools import in_ci
from worker_shutdown import pytest_sessionfinish  # noqa: F401 - a hook: collect before an xdist worker reports

#: Seconds before the `fifo` fixture lets a blocked reader go.
FIFO_RELEASE_S = 10.0


@pytest.fixture
def fifo(tmp_path: Path) -> Iterator[Path]:
    """A FIFO nobody writes to: opening it for reading blocks until a writer comes.

    Code under test must refuse it at once. So that a regression fails instead of
    hanging the suite, a writer opens and closes it every 0.1 s after
    ``FIFO_RELEASE_S`` seconds (a blocked reader then sees end of file).
    """
    path = tmp_path / "pipe"
    os.mkfifo(path)
    stop = threading.Event()

    def release() -> None:
        if stop.wait(FIFO_RELEASE_S):
            return
        while not stop.wait(0.1):
            with contextlib.suppress(OSError):  # ENXIO while no reader waits
                os.close(os.open(path, os.O_WRONLY | os.O_NONBLOCK))

    releaser = threading.Thread(target=release, daemon=True)
    releaser.start()
    yield path
    stop.set()
    releaser.join()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()
    if in_ci() and report.skipped and not hasattr(report, "wasxfail"):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        report.outcome = "failed"
        report.longrepr = f"skipped under CI=true, which must run every test: {reason}"


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector: pytest.Collector) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()
    if in_ci() and report.skipped:
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        report.outcome = "failed"
        report.longrepr = f"{collector.nodeid} skipped under CI=true, which must run every test: {reason}"
