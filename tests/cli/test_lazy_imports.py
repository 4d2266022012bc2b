"""Each command path imports only what it needs: `kedi` starts in a fraction of a second.

Every case runs `kedi` in a fresh interpreter and lists the heavy libraries it
loaded. `kedi --help` loads none of them (not even NumPy); decrypting a container
needs NumPy and the cipher, never SciPy, PyTorch, the keystore's SQLAlchemy or the
figures' Pillow.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

HEAVY = (
    "numpy",
    "scipy",
    "torch",
    "pydicom",
    "sqlalchemy",
    "nibabel",
    "PIL",
    "skimage",
    "matplotlib",
    "cryptography",
    "cv2",
    "fastapi",
    "uvicorn",
    "argon2",
)

PROBE = """
import sys
from deepkedi.cli import main
sys.argv = ["kedi", *sys.argv[1:]]
try:
    main()
except SystemExit as exc:
    code = exc.code
else:
    code = 0
print("LOADED", code, " ".join(m for m in {heavy!r} if m in sys.modules), file=sys.stderr)
"""


def loaded(*args: object) -> tuple[int, set[str]]:
    done = subprocess.run(
        [sys.executable, "-c", PROBE.format(heavy=HEAVY), *map(str, args)], capture_output=True, text=True, check=False
    )
    line = next(line for line in done.stderr.splitlines() if line.startswith("LOADED"))
    _, code, *modules = line.split()
    return int(code), set(modules)


@pytest.fixture(scope="module")
def container(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("lazy")
    np.save(folder / "slice.npy", np.arange(140 * 140, dtype=np.uint16).reshape(140, 140))
    assert loaded("keygen", "-o", folder / "site.key", "--no-gan")[0] == 0
    assert loaded("encrypt", folder / "slice.npy", "-o", folder / "slice.kedi", "--key", folder / "site.key")[0] == 0
    return folder / "slice.kedi", folder / "site.key"


def test_help_and_version_load_no_heavy_library() -> None:
    for args in (
        ["--help"],
        ["--version"],
        ["encrypt", "--help"],
        ["keys", "--help"],
        ["metrics", "--help"],
        ["serve", "--help"],
    ):
        code, modules = loaded(*args)
        assert code == 0 and modules == set(), (args, modules)


def test_decrypt_and_inspect_of_a_container_load_only_numpy_and_the_cipher(
    container: tuple[Path, Path], tmp_path: Path
) -> None:
    path, key = container
    code, modules = loaded("decrypt", path, "-o", tmp_path / "back.npy", "--key", key)
    assert code == 0 and modules == {"numpy", "cryptography"}, modules
    code, modules = loaded("inspect", path, "--json")
    assert code == 0 and modules <= {"numpy", "cryptography"}, modules


def test_keygen_without_the_gan_loads_no_torch(tmp_path: Path) -> None:
    code, modules = loaded("keygen", "-o", tmp_path / "k.key", "--no-gan")
    assert code == 0 and "torch" not in modules and "scipy" not in modules, modules


def test_encrypting_an_image_loads_only_its_own_format_library(tmp_path: Path) -> None:
    from PIL import Image

    np.save(tmp_path / "a.npy", np.arange(64, dtype=np.uint16).reshape(8, 8))
    Image.fromarray(np.arange(64, dtype=np.uint8).reshape(8, 8)).save(tmp_path / "b.png")
    assert loaded("keygen", "-o", tmp_path / "k.key", "--no-gan")[0] == 0
    code, modules = loaded("encrypt", tmp_path / "a.npy", "-o", tmp_path / "a.kedi", "--key", tmp_path / "k.key")
    assert code == 0 and modules == {"numpy", "cryptography"}, modules
    code, modules = loaded("encrypt", tmp_path / "b.png", "-o", tmp_path / "b.kedi", "--key", tmp_path / "k.key")
    assert code == 0 and modules == {"numpy", "cryptography", "PIL"}, modules
    # (nibabel, for NIfTI and MGH, itself imports SciPy, Pillow and pydicom when it loads.)


def test_telling_a_container_from_other_files_loads_no_dicom_library(tmp_path: Path) -> None:
    """`kedi inspect` of a non-container falls back to the image reader: a .npy loads no pydicom."""
    np.save(tmp_path / "a.npy", np.arange(64, dtype=np.uint16).reshape(8, 8))
    code, modules = loaded("inspect", tmp_path / "a.npy", "--json")
    assert code == 0 and "pydicom" not in modules, modules
