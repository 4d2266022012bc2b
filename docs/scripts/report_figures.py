"""Regenerate the docs/figures/ PNGs that `kedi reproduce` and `kedi demo` draw.

Run from the repository root (about a minute on two cores)::

    .venv/bin/python docs/scripts/report_figures.py

A full `kedi reproduce` on the bundled data (seed 0) gives ``attack_matrix.png``,
``key_reuse.png`` and ``wrong_keys.png`` (its ``fig10_wrong_keys.png``), as
docs/REPRODUCTION.md and the README show them; `kedi demo` gives ``speckle_tour.png``
(its ``speckle.png``) and ``paper_suite.png``. Both run in a temporary folder; only
the copied PNGs land in docs/figures/. The demo draws fresh keys, so its figures differ
in their noise from run to run, never in what they show.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

FIGURES = Path(__file__).resolve().parents[1] / "figures"

#: docs/figures/ name ← (command, file it writes)
COPIES = {
    "attack_matrix.png": ("reproduce", "attack_matrix.png"),
    "key_reuse.png": ("reproduce", "key_reuse.png"),
    "wrong_keys.png": ("reproduce", "fig10_wrong_keys.png"),
    "speckle_tour.png": ("demo", "speckle.png"),
    "paper_suite.png": ("demo", "paper_suite.png"),
}


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        outputs = {"reproduce": Path(tmp) / "reproduce", "demo": Path(tmp) / "demo"}
        kedi = [sys.executable, "-m", "deepkedi.cli"]
        subprocess.run([*kedi, "reproduce", "--seed", "0", "--out", str(outputs["reproduce"])], check=True)
        subprocess.run([*kedi, "demo", "--out", str(outputs["demo"])], check=True, stdout=subprocess.DEVNULL)
        for name, (command, produced) in COPIES.items():
            shutil.copyfile(outputs[command] / produced, FIGURES / name)
            print(f"docs/figures/{name} ← kedi {command}: {produced}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
