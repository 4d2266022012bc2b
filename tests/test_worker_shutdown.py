"""worker_shutdown.py: an xdist worker has collected and frozen its heap before pytest's final collections.

A small session runs under ``pytest -n 1`` in a child process; its worker records, in
``pytest_unconfigure`` (after the worker has reported finished, where execnet's
5-second limit applies), how many objects sit in the permanent generation, which
``gc.collect()`` skips. With the hook every object the session left is there; without
it none is, and pytest's final collections traverse them all.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

TESTS = Path(__file__).resolve().parent
HEAP = 50_000

_CONFTEST = """
import gc, json, os
{hook}

def pytest_unconfigure(config):
    if hasattr(config, "workerinput"):
        with open(os.environ["WORKER_REPORT"], "w") as handle:
            json.dump({{"frozen": gc.get_freeze_count()}}, handle)
"""

_TEST = f"""
HEAP = [[i] for i in range({HEAP})]  # what a long session leaves: many small tracked objects


def test_the_heap_is_there():
    assert len(HEAP) == {HEAP}
"""


def _frozen_after_report(folder: Path, hook: str) -> int:
    folder.mkdir()
    (folder / "conftest.py").write_text(_CONFTEST.format(hook=hook), encoding="utf-8")
    (folder / "test_heap.py").write_text(_TEST, encoding="utf-8")
    report = folder / "report.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}  # this run may itself be a worker
    env.update(WORKER_REPORT=str(report), PYTHONPATH=os.pathsep.join([str(TESTS), *sys.path]))
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-n", "1", "-q", "-p", "no:cacheprovider", "--rootdir", str(folder), "."],
        capture_output=True,
        text=True,
        env=env,
        cwd=folder,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return int(json.loads(report.read_text())["frozen"])


def test_worker_freezes_its_heap_before_reporting_finished(tmp_path: Path) -> None:
    hook = "from worker_shutdown import pytest_sessionfinish  # noqa: F401"
    assert _frozen_after_report(tmp_path / "with-hook", hook) > HEAP


def test_without_the_hook_the_final_collections_would_scan_the_heap(tmp_path: Path) -> None:
    # The control: the measure above is not satisfied by pytest or xdist on their own.
    assert _frozen_after_report(tmp_path / "without-hook", "") == 0
