"""Conformance sweep of `kedi encrypt --as-dicom` over every DICOM test file we can install.

The corpus: pydicom's own test files, pydicom-data's (the `test` extra installs it), and of
each uncompressed little-endian image among them four copies that DCMTK makes: explicit VR
big endian, deflated, RLE and JPEG-LS lossless. For every file:

- `kedi encrypt --as-dicom` either writes a DICOM-native file or refuses with exit 4 and a
  single line on stderr (no output written); nothing else is accepted;
- what it writes decrypts to the original byte for byte;
- dciodvfy finds no error in the output that it does not find in the original (for a
  deflated original, dciodvfy cannot read it: in a copy DCMTK inflated), the UIDs quoted in
  messages aside;
- where gdcminfo reads the original, it reads the output (checked for the files as they are
  and their big-endian copies).

`make conformance` runs this module alone. Under CI (CI=true) the tools and pydicom-data
must be present: a missing one fails the sweep instead of shrinking it.
"""

from __future__ import annotations

import hashlib
import importlib.util
import subprocess
import warnings
from pathlib import Path

import pydicom
import pytest
from external_tools import in_ci
from pydicom.uid import DeflatedExplicitVRLittleEndian, ExplicitVRLittleEndian, ImplicitVRLittleEndian
from test_dicom_native import _iod_errors, _tool
from typer.testing import CliRunner

from deepkedi.cli import app
from deepkedi.keys import generate_key, save_key

_PYDICOM_FILES = Path(pydicom.__file__).parent / "data" / "test_files"


def _pydicom_data_folder() -> Path | None:
    """pydicom-data's files (the `data_store` package), or None when it is not installed."""
    spec = importlib.util.find_spec("data_store")
    if spec is None or not spec.submodule_search_locations:
        return None
    folder = Path(next(iter(spec.submodule_search_locations))) / "data"
    return folder if folder.is_dir() else None


def _corpus() -> list[Path]:
    folders = [_PYDICOM_FILES]
    extra = _pydicom_data_folder()
    if extra is not None:
        folders.append(extra)
    skip = {".py", ".pyc", ".txt", ".md", ".json", ".gz", ".bz2", ".xz", ".zip"}
    return [p for folder in folders for p in sorted(folder.rglob("*")) if p.is_file() and p.suffix not in skip]


CORPUS = _corpus()

#: DCMTK commands that make the four copies, by transfer syntax.
_VARIANTS = {
    "big-endian": ["dcmconv", "+tb"],
    "deflated": ["dcmconv", "+td"],
    "rle": ["dcmcrle"],
    "jpeg-ls": ["dcmcjpls"],
}


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _header(path: Path) -> pydicom.Dataset | None:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return pydicom.dcmread(path, stop_before_pixels=True)
    except Exception:  # noqa: BLE001 - not a readable Part 10 file: no copies to make
        return None


def _variants(source: Path, folder: Path) -> list[tuple[str, Path]]:
    """The source, and the copies DCMTK can make of it when it is an uncompressed little-endian image."""
    files = [("as-is", source)]
    ds = _header(source)
    syntax = None if ds is None else ds.file_meta.get("TransferSyntaxUID")
    if syntax not in (ExplicitVRLittleEndian, ImplicitVRLittleEndian) or "Rows" not in ds:
        return files
    for name, command in _VARIANTS.items():
        copy = folder / f"{name}.dcm"
        made = subprocess.run(
            [_tool(command[0]), *command[1:], str(source), str(copy)],
            capture_output=True,
            check=False,
            text=True,
            timeout=120,
        )
        # DCMTK refuses what it cannot encode (a truncated file, 32-bit words for JPEG-LS,
        # YBR_FULL_422 for RLE): that copy is not part of the corpus.
        if made.returncode == 0:
            files.append((name, copy))
    return files


def _baseline_errors(path: Path, folder: Path) -> set[str]:
    """dciodvfy's errors for the original; a deflated one is inflated first (dciodvfy cannot read it)."""
    ds = _header(path)
    if ds is not None and ds.file_meta.get("TransferSyntaxUID") == DeflatedExplicitVRLittleEndian:
        inflated = folder / "inflated.dcm"
        run = subprocess.run(
            [_tool("dcmconv"), "+te", str(path), str(inflated)],
            capture_output=True,
            check=False,
            text=True,
            timeout=120,
        )
        assert run.returncode == 0, run.stderr
        return _iod_errors(inflated)
    return _iod_errors(path)


def _gdcm_reads(path: Path) -> bool:
    return subprocess.run([_tool("gdcminfo"), str(path)], capture_output=True, check=False, timeout=120).returncode == 0


@pytest.fixture(scope="module")
def sweep_key(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("sweep-key") / "site.key"
    save_key(generate_key(gan=False), path)
    return path


def test_corpus_is_complete() -> None:
    """Not vacuous: pydicom's files are there, pydicom-data's too wherever the test extra is
    installed (always under CI), and DCMTK makes all four copies of a plain CT image."""
    assert sum(1 for p in CORPUS if p.is_relative_to(_PYDICOM_FILES)) >= 80
    if in_ci() or _pydicom_data_folder() is not None:
        folder = _pydicom_data_folder()
        assert folder is not None, "pydicom-data is not installed (pip install -e '.[test]')"
        assert sum(1 for p in CORPUS if p.is_relative_to(folder)) >= 60


def test_dcmtk_makes_every_copy(tmp_path: Path) -> None:
    made = dict(_variants(_PYDICOM_FILES / "CT_small.dcm", tmp_path))
    assert set(made) == {"as-is", *_VARIANTS}
    for name, syntax in (
        ("big-endian", "1.2.840.10008.1.2.2"),
        ("deflated", DeflatedExplicitVRLittleEndian),
        ("rle", "1.2.840.10008.1.2.5"),
        ("jpeg-ls", "1.2.840.10008.1.2.4.80"),
    ):
        assert _header(made[name]).file_meta.TransferSyntaxUID == syntax, name


@pytest.mark.parametrize("source", CORPUS, ids=lambda p: str(p.relative_to(p.parents[1])))
def test_encrypt_as_dicom_keeps_the_iod_or_refuses(source: Path, sweep_key: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    for name, path in _variants(source, tmp_path):
        native, back = tmp_path / f"{name}.native.dcm", tmp_path / f"{name}.back.dcm"
        result = runner.invoke(
            app,
            ["encrypt", str(path), "-o", str(native), "--key", str(sweep_key), "--as-dicom"],
            catch_exceptions=False,
        )
        if result.exit_code == 4:
            lines = result.stderr.strip().splitlines()
            assert len(lines) == 1 and lines[0].startswith("kedi: error:"), (name, result.stderr)
            assert not native.exists(), name
            continue
        assert result.exit_code == 0, (name, result.stderr)
        result = runner.invoke(
            app, ["decrypt", str(native), "-o", str(back), "--key", str(sweep_key)], catch_exceptions=False
        )
        assert result.exit_code == 0, (name, result.stderr)
        assert _sha256(back) == _sha256(path), f"{name}: not restored byte for byte"
        new = _iod_errors(native) - _baseline_errors(path, tmp_path)
        assert not new, (name, sorted(new))
        # gdcminfo takes a tenth of a second a file: it checks the sources and their big-endian
        # copies (where palette and LUT words need swapping), and the original only on a failure.
        if name in ("as-is", "big-endian") and not _gdcm_reads(native):
            assert not _gdcm_reads(path), f"{name}: gdcminfo reads the original but not the output"
