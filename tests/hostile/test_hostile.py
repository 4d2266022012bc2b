"""The hostile-input harness (harness.py): a short run inside the test suite, and the harness's own checks.

`make fuzz` runs the full 1,500 cases (a CI step of its own); here 80 cases (two turns of
the families' cycle, so every family and every command group they reach, and the one heavy
case, id 77) keep regressions visible in `make test`.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
import typer

import harness
from harness import Case, run_case

HARNESS = Path(harness.__file__)


def test_hostile_inputs_keep_the_contract(tmp_path: Path) -> None:
    """80 seeded crafted inputs: no traceback, exit codes in the table, no hang, RSS < 1 GiB."""
    proc = subprocess.run(
        [sys.executable, str(HARNESS), "--cases", "80", "--seed", "11", "--workers", "2", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=1200,
        check=False,
    )
    records = [json.loads(line) for line in (tmp_path / "results.jsonl").read_text().splitlines()]
    assert len(records) == 80, proc.stdout[-3000:] + proc.stderr[-3000:]
    families = {r["family"] for r in records}
    assert families >= {f.__name__.removeprefix("fam_") for f, _ in harness.FAMILIES} | {"heavy"}
    commands = {r["command"].split()[0] for r in records}
    assert commands >= {"encrypt", "decrypt", "inspect", "metrics", "nist", "speckle", "despeckle", "keygen", "keys"}
    assert max(r["rss_mib"] for r in records) > 50  # the RSS was measured, not left at zero
    assert proc.returncode == 0, proc.stdout[-12000:]


@pytest.fixture
def inspect_module(monkeypatch: pytest.MonkeyPatch):
    """Where `kedi inspect` finds ``read_image`` when it runs (it imports it then, from the package)."""
    import deepkedi.cli.inspect  # noqa: F401 - the command must be registered
    import deepkedi.imaging as module

    return module


def _case(argv: list[str], timeout: float = 10.0) -> Case:
    return Case(id=0, family="self-test", command="inspect", argv=argv, description="self-test", timeout=timeout)


def test_an_escaping_exception_is_a_traceback(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, inspect_module) -> None:
    def boom(path):
        raise RuntimeError("unexpected")

    monkeypatch.setattr(inspect_module, "read_image", boom)
    (tmp_path / "x.npy").write_bytes(b"\x93NUMPY")
    record = run_case(_case(["inspect", str(tmp_path / "x.npy")]))
    assert record["failures"] == ["traceback"]
    assert record["exception"].startswith("RuntimeError") and "cli/inspect.py" in record["where"]


def test_an_exit_code_outside_the_table_is_a_failure(tmp_path: Path, monkeypatch, inspect_module) -> None:
    def exit_seven(path):
        raise typer.Exit(7)

    monkeypatch.setattr(inspect_module, "read_image", exit_seven)
    (tmp_path / "x.npy").write_bytes(b"\x93NUMPY")
    record = run_case(_case(["inspect", str(tmp_path / "x.npy")]))
    assert record["exit_code"] == 7 and record["failures"] == ["exit-code"]


def test_a_case_past_its_time_is_a_hang(tmp_path: Path, monkeypatch, inspect_module) -> None:
    monkeypatch.setattr(inspect_module, "read_image", lambda path: time.sleep(30))
    (tmp_path / "x.npy").write_bytes(b"\x93NUMPY")
    start = time.monotonic()
    record = run_case(_case(["inspect", str(tmp_path / "x.npy")], timeout=0.5))
    assert record["failures"] == ["hang"] and time.monotonic() - start < 5


def test_a_clean_failure_keeps_the_contract(tmp_path: Path) -> None:
    (tmp_path / "x.npy").write_bytes(b"not an image")
    record = run_case(_case(["inspect", str(tmp_path / "x.npy")]))
    assert record["exit_code"] == 4 and record["failures"] == []
    assert record["stderr_first"].startswith("kedi: error:")


def test_cases_are_reproducible_from_seed_and_id(tmp_path: Path) -> None:
    seeds = harness.Seeds(
        root=tmp_path,
        keyfile=tmp_path / "k",
        key_image=tmp_path / "ki.png",
        kek=tmp_path / "kek",
        passphrase=tmp_path / "pw",
        bits=tmp_path / "bits",
    )
    seeds.bits.write_bytes(bytes(range(256)) * 100)
    nist_ids = [i for i in range(200) if harness.CYCLE[i % len(harness.CYCLE)] is harness.fam_nist][:3]
    first = [harness.make_case(5, i, seeds, tmp_path / f"a{i}") for i in nist_ids]
    again = [harness.make_case(5, i, seeds, tmp_path / f"b{i}") for i in nist_ids]
    assert [c.description for c in first] == [c.description for c in again]
    for i in nist_ids:
        assert (tmp_path / f"a{i}" / "bits.bin").read_bytes() == (tmp_path / f"b{i}" / "bits.bin").read_bytes()


def test_signatures_group_one_defect_across_paths() -> None:
    base = {"command": "inspect", "failures": ["exit-code"], "exception": None, "where": "", "exit_code": 1}
    a = harness.signature({**base, "stderr_first": "kedi: error: /tmp/a/case-1/x.dcm: Too many levels"})
    b = harness.signature({**base, "stderr_first": "kedi: error: /tmp/b/case-22/y.dcm: Too many levels"})
    assert a == b
    hang = {**base, "failures": ["hang"], "exception": "CaseTimeout: ", "exit_code": None, "stderr_first": ""}
    fifo = harness.signature({**hang, "input": "special path: fifo"})
    bomb = harness.signature({**hang, "input": "decompression bomb: PNG 30000²"})
    assert fifo != bomb and fifo.endswith("on special path")
