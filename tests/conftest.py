"""Fixtures every test folder may use."""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Iterator

import pytest

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
            try:
                os.close(os.open(path, os.O_WRONLY | os.O_NONBLOCK))  # ENXIO while no reader waits
            except OSError:
                pass

    releaser = threading.Thread(target=release, daemon=True)
    releaser.start()
    yield path
    stop.set()
    releaser.join()
