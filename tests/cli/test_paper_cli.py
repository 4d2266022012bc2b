"""`kedi encrypt/decrypt --suite paper`: the warning, exit codes, suite/key mismatches, --all-patterns, inspect."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from deepkedi.cipher.layout import cipher_image
from deepkedi.cipher.paper import PAPER_WARNING, UNVERIFIED_WARNING, paper_decrypt_pixels, paper_encrypt_pixels
from deepkedi.datasets import phantom
from deepkedi.keys import KeyImage, load_key_image, save_key_image
from deepkedi.metrics import mse

WARNING_LINE = f"warning: {PAPER_WARNING}"


def _warned_once(stderr: str) -> bool:
    return stderr.count("warning: suite 'paper'") == 1 and WARNING_LINE in stderr.splitlines()


@pytest.fixture
def plain() -> np.ndarray:
    return phantom("brain", "MR", seed=1).pixels


@pytest.fixture
def brain(tmp_path: Path, plain: np.ndarray) -> Path:
    path = tmp_path / "brain.npy"
    np.save(path, plain)
    return path


def _save_key(path: Path, dtype: type, shape: tuple[int, ...], seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    save_key_image(KeyImage(rng.integers(0, np.iinfo(dtype).max + 1, shape, dtype=dtype)), path)
    return path


@pytest.fixture
def key_png(tmp_path: Path, plain: np.ndarray) -> Path:
    return _save_key(tmp_path / "key.png", np.uint16, plain.shape)


def test_round_trip_warns_once_each_way(tmp_path: Path, kedi, brain: Path, key_png: Path, plain) -> None:
    container = tmp_path / "brain.kedi"
    result = kedi("encrypt", brain, "-o", container, "--suite", "paper", "--key", key_png, "--seed", 4)
    assert result.exit_code == 0, result.stderr
    assert _warned_once(result.stderr)
    assert result.stdout.startswith(f"encrypted {brain} to {container} (paper suite, horizontal zigzag, key image ")
    result = kedi("decrypt", container, "-o", tmp_path / "restored.npy", "--key", key_png)
    assert result.exit_code == 0, result.stderr
    assert _warned_once(result.stderr)
    restored = np.load(tmp_path / "restored.npy")
    span = float(plain.max()) - float(plain.min())
    assert restored.dtype == np.uint16 and 10 * np.log10(span**2 / mse(plain, restored)) > 25.32


def test_every_decryption_says_its_output_is_unverified(tmp_path: Path, kedi, brain: Path, key_png: Path) -> None:
    container = tmp_path / "brain.kedi"
    assert kedi("encrypt", brain, "-o", container, "--suite", "paper", "--key", key_png).exit_code == 0
    tampered = tmp_path / "tampered.kedi"
    data = bytearray(container.read_bytes())
    data[-100] ^= 0x5A  # a cipher word: nothing can notice
    tampered.write_bytes(bytes(data))
    for source, options in ((container, ()), (container, ("--no-despeckle",)), (tampered, ())):
        out = tmp_path / f"out-{len(list(tmp_path.iterdir()))}.npy"
        result = kedi("decrypt", source, "-o", out, "--key", key_png, *options)
        assert result.exit_code == 0, result.stderr
        assert f"warning: {out}: {UNVERIFIED_WARNING}" in result.stderr.splitlines()
    # Where it can tell (the key image's fingerprint differs): exit 3, no output, no claim about one.
    other = _save_key(tmp_path / "other.png", np.uint16, load_key_image(key_png).shape, seed=5)
    result = kedi("decrypt", tampered, "-o", tmp_path / "wrong.npy", "--key", other)
    assert result.exit_code == 3 and "unverified" not in result.stderr
    assert not (tmp_path / "wrong.npy").exists()


def test_seed_and_pattern_reach_the_pipeline(tmp_path: Path, kedi, brain: Path, key_png: Path, plain) -> None:
    container = tmp_path / "brain.kedi"
    args = ("--suite", "paper", "--key", key_png, "--seed", 9, "--pattern", "vertical")
    assert kedi("encrypt", brain, "-o", container, *args).exit_code == 0
    key = load_key_image(key_png)
    assert np.array_equal(cipher_image(container), paper_encrypt_pixels(plain, key, pattern="vertical", rng=9))
    result = kedi("decrypt", container, "-o", tmp_path / "speckled.npy", "--key", key_png, "--no-despeckle")
    assert result.exit_code == 0, result.stderr
    expected = paper_decrypt_pixels(cipher_image(container), key, pattern="vertical", despeckle=False)
    assert np.array_equal(np.load(tmp_path / "speckled.npy"), expected)


def test_hybrid_suite_prints_no_warning(tmp_path: Path, kedi, brain: Path, keyfile: Path) -> None:
    result = kedi("encrypt", brain, "-o", tmp_path / "h.kedi", "--key", keyfile)
    assert result.exit_code == 0 and "warning" not in result.stderr
    result = kedi("decrypt", tmp_path / "h.kedi", "-o", tmp_path / "h.npy", "--key", keyfile)
    assert result.exit_code == 0 and "warning" not in result.stderr


def test_key_of_the_other_suite_exits_2(tmp_path: Path, kedi, brain: Path, key_png: Path, keyfile: Path) -> None:
    result = kedi("encrypt", brain, "-o", tmp_path / "a.kedi", "--suite", "paper", "--key", keyfile)
    assert result.exit_code == 2 and "needs a key image" in result.stderr
    result = kedi("encrypt", brain, "-o", tmp_path / "b.kedi", "--key", key_png)
    assert result.exit_code == 2 and "--suite paper" in result.stderr
    assert kedi("encrypt", brain, "-o", tmp_path / "p.kedi", "--suite", "paper", "--key", key_png).exit_code == 0
    assert kedi("encrypt", brain, "-o", tmp_path / "h.kedi", "--key", keyfile).exit_code == 0
    result = kedi("decrypt", tmp_path / "p.kedi", "-o", tmp_path / "p.npy", "--key", keyfile)
    assert result.exit_code == 2 and "'paper' container" in result.stderr and "key image" in result.stderr
    result = kedi("decrypt", tmp_path / "h.kedi", "-o", tmp_path / "h.npy", "--key", key_png)
    assert result.exit_code == 2 and "'hybrid' container" in result.stderr
    assert not (tmp_path / "p.npy").exists() and not (tmp_path / "h.npy").exists()


def test_wrong_key_image_exits_3(tmp_path: Path, kedi, brain: Path, key_png: Path, plain) -> None:
    other = _save_key(tmp_path / "other.png", np.uint16, plain.shape, seed=1)
    container = tmp_path / "brain.kedi"
    assert kedi("encrypt", brain, "-o", container, "--suite", "paper", "--key", key_png).exit_code == 0
    result = kedi("decrypt", container, "-o", tmp_path / "out.npy", "--key", other)
    assert result.exit_code == 3 and "decryption failed" in result.stderr
    assert not (tmp_path / "out.npy").exists()
    truncated = tmp_path / "short.kedi"
    truncated.write_bytes(container.read_bytes()[:-2])
    assert kedi("decrypt", truncated, "-o", tmp_path / "out.npy", "--key", key_png).exit_code == 3


def test_key_image_that_does_not_fit_exits_2(tmp_path: Path, kedi, brain: Path) -> None:
    small = _save_key(tmp_path / "small.png", np.uint16, (64, 64))
    result = kedi("encrypt", brain, "-o", tmp_path / "c.kedi", "--suite", "paper", "--key", small)
    assert result.exit_code == 2
    assert "256×256 16-bit key image" in result.stderr and "kedi keygen --suite paper --like IMAGE" in result.stderr
    eight = _save_key(tmp_path / "eight.png", np.uint8, (256, 256))
    assert kedi("encrypt", brain, "-o", tmp_path / "c.kedi", "--suite", "paper", "--key", eight).exit_code == 2
    assert not (tmp_path / "c.kedi").exists()


def test_bad_inputs_and_keys_exit_4(tmp_path: Path, kedi, brain: Path, key_png: Path) -> None:
    plain_png = tmp_path / "plain.png"
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(plain_png)
    result = kedi("encrypt", brain, "-o", tmp_path / "c.kedi", "--suite", "paper", "--key", plain_png)
    assert result.exit_code == 4 and "deepkedi-key-image" in result.stderr
    result = kedi("encrypt", tmp_path / "absent.npy", "-o", tmp_path / "c.kedi", "--suite", "paper", "--key", key_png)
    assert result.exit_code == 4
    floats = tmp_path / "f.npy"
    np.save(floats, np.zeros((256, 256), np.float32))
    result = kedi("encrypt", floats, "-o", tmp_path / "c.kedi", "--suite", "paper", "--key", key_png)
    assert result.exit_code == 4 and "uint8, uint16 or int16" in result.stderr
    junk = tmp_path / "junk.kedi"
    junk.write_bytes(b"not a container at all")
    assert kedi("decrypt", junk, "-o", tmp_path / "o.npy", "--key", key_png).exit_code == 4


def test_existing_output_needs_force(tmp_path: Path, kedi, brain: Path, key_png: Path) -> None:
    container = tmp_path / "brain.kedi"
    args = ("--suite", "paper", "--key", key_png)
    assert kedi("encrypt", brain, "-o", container, *args).exit_code == 0
    result = kedi("encrypt", brain, "-o", container, *args)
    assert result.exit_code == 2 and "--force" in result.stderr
    assert kedi("encrypt", brain, "-o", container, *args, "--force").exit_code == 0


def test_folders_are_refused_with_exit_2(tmp_path: Path, kedi, brain: Path, key_png: Path) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    result = kedi("encrypt", folder, "-o", tmp_path / "out", "--suite", "paper", "--key", key_png)
    assert result.exit_code == 2 and "one file at a time" in result.stderr
    result = kedi("decrypt", folder, "-o", tmp_path / "out", "--key", key_png)
    assert result.exit_code == 2 and "one file at a time" in result.stderr


def test_paper_options_without_paper_suite_exit_2(tmp_path: Path, kedi, brain: Path, keyfile: Path) -> None:
    assert kedi("encrypt", brain, "-o", tmp_path / "c.kedi", "--key", keyfile, "--seed", 1).exit_code == 2
    assert kedi("encrypt", brain, "-o", tmp_path / "d", "--key", keyfile, "--all-patterns").exit_code == 2


def test_all_patterns_writes_three_containers_and_the_figure(tmp_path: Path, kedi, brain: Path, key_png) -> None:
    outdir = tmp_path / "figure"
    result = kedi("encrypt", brain, "-o", outdir, "--suite", "paper", "--key", key_png, "--all-patterns")
    assert result.exit_code == 0, result.stderr
    assert _warned_once(result.stderr)
    names = sorted(p.name for p in outdir.iterdir())
    assert names == ["brain.diagonal.kedi", "brain.horizontal.kedi", "brain.vertical.kedi", "cipher_images.png"]
    with Image.open(outdir / "cipher_images.png") as figure:
        assert figure.format == "PNG" and figure.width > 3 * figure.height  # four tiles side by side
    ciphers = [cipher_image(outdir / f"brain.{p}.kedi") for p in ("vertical", "horizontal", "diagonal")]
    assert not np.array_equal(ciphers[0], ciphers[1]) and not np.array_equal(ciphers[1], ciphers[2])
    for pattern in ("vertical", "horizontal", "diagonal"):
        result = kedi("decrypt", outdir / f"brain.{pattern}.kedi", "-o", tmp_path / f"{pattern}.npy", "--key", key_png)
        assert result.exit_code == 0, result.stderr
    # The three share one speckle draw, so their restored images agree.
    first = np.load(tmp_path / "vertical.npy")
    assert all(np.array_equal(first, np.load(tmp_path / f"{p}.npy")) for p in ("horizontal", "diagonal"))
    again = kedi("encrypt", brain, "-o", outdir, "--suite", "paper", "--key", key_png, "--all-patterns")
    assert again.exit_code == 2
    forced = kedi("encrypt", brain, "-o", outdir, "--suite", "paper", "--key", key_png, "--all-patterns", "--force")
    assert forced.exit_code == 0, forced.stderr


def test_inspect_shows_suite_paper_unauthenticated(tmp_path: Path, kedi, brain: Path, key_png: Path) -> None:
    container = tmp_path / "brain.kedi"
    assert kedi("encrypt", brain, "-o", container, "--suite", "paper", "--key", key_png).exit_code == 0
    result = kedi("inspect", container, "--json", "--cipher-image", tmp_path / "c.npy")
    assert result.exit_code == 0, result.stderr
    record = json.loads(result.stdout)
    assert record["suite"] == "paper" and record["authenticated"] is False and "unauthenticated" in record["note"]
    assert record["size_matches_header"] is True and record["segments"] == 0 and record["shape"] == [256, 256]
    assert np.array_equal(np.load(tmp_path / "c.npy"), cipher_image(container))
    result = kedi("inspect", container)
    assert result.exit_code == 0 and "unauthenticated" in result.stdout


def test_a_signed_ct_decrypts_to_png_and_reads_back_signed(tmp_path: Path, kedi) -> None:
    """The README's line `kedi decrypt ct-paper.kedi -o ct-restored.png --key ct-key.png` on its signed CT."""
    from pydicom.data import get_testdata_file

    from deepkedi.imaging import read_image

    ct = Path(str(get_testdata_file("CT_small.dcm")))
    original = read_image(ct).pixels
    assert original.dtype == np.int16  # the case at hand: PNG has no signed samples
    key = _save_key(tmp_path / "ct-key.png", np.uint16, original.shape)
    container = tmp_path / "ct-paper.kedi"
    assert kedi("encrypt", ct, "-o", container, "--suite", "paper", "--key", key, "--seed", 3).exit_code == 0
    restored = tmp_path / "ct-restored.png"
    result = kedi("decrypt", container, "-o", restored, "--key", key)
    assert result.exit_code == 0, result.stderr
    assert result.stdout.startswith(f"decrypted {container} to {restored} (paper suite,")
    with Image.open(restored) as picture:
        assert picture.info["deepkedi-signed-offset"] == "32768"
    back = read_image(restored).pixels
    assert back.dtype == np.int16 and back.shape == original.shape
    span = float(original.max()) - float(original.min())
    assert 10 * np.log10(span**2 / mse(original, back)) > 25.32  # the paper's PSNR: an estimate, signed values kept
    # A format that cannot hold int16 is refused, naming the file and the fix, and leaves no file behind.
    result = kedi("decrypt", container, "-o", tmp_path / "ct-restored.tif", "--key", key)
    assert result.exit_code == 2
    assert "ct-restored.tif: TIFF holds uint8 or uint16 pixels, not int16; a .png file holds them" in result.stderr
    assert not (tmp_path / "ct-restored.tif").exists()
