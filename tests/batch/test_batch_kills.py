"""The reduced form of `make killtest`'s folder half (tests/batch_killtest.py: 480 files, 12 kills each way)."""

from __future__ import annotations

from pathlib import Path

import pytest
from batch_killtest import run


@pytest.mark.slow
def test_sigkill_of_the_whole_run_at_random_points_then_resume(tmp_path: Path) -> None:
    # Raises, listing them, on any failure: a readable part file, an unreadable manifest, a final
    # resume that does not end with every file done once, a part file left, a byte that differs.
    outcomes = run(tmp_path, series=6, kills=2, seed=5)
    assert [o.kills for o in outcomes] == [2, 2]
