"""Every Python example in docs/API.md runs as written, each in an empty folder of its own."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

API_MD = Path(__file__).parents[1] / "docs" / "API.md"
BLOCKS = re.findall(r"```python\n(.*?)```", API_MD.read_text(encoding="utf-8"), flags=re.S)


def test_the_api_page_has_examples() -> None:
    assert len(BLOCKS) >= 6


@pytest.mark.parametrize("number", range(len(BLOCKS)))
def test_api_md_example_runs(number: int, tmp_path: Path) -> None:
    script = tmp_path / "example.py"
    script.write_text(BLOCKS[number], encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    done = subprocess.run(
        [sys.executable, str(script)], cwd=tmp_path, capture_output=True, check=False, text=True, env=env, timeout=300
    )
    assert done.returncode == 0, f"example {number + 1} of docs/API.md failed:\n{BLOCKS[number]}\n{done.stderr}"
