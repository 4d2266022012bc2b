"""The hybrid suite: byte-exact round trips, tamper and truncation detection, cipher images."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from deepkedi.cipher.format import parse_header
from deepkedi.cipher.hybrid import (
    _encrypt_from_parts,
    decrypt_file,
    decrypt_image,
    decrypt_pixels,
    encrypt_file,
    encrypt_image,
)
from deepkedi.cipher.layout import cipher_image
from deepkedi.datasets import sample_corpus
from deepkedi.errors import AuthenticationError, FormatError, OutputExistsError, UnsupportedImageError
from deepkedi.imaging import MedicalImage
from deepkedi.keys import generate_key
from deepkedi.transforms.zigzag import ZigzagPattern

KEY = generate_key()
PATTERNS = list(ZigzagPattern)
DTYPES = [np.uint8, np.uint16, np.int16, np.int32, np.float32, np.float64, ">u2", ">i4", bool]


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@settings(max_examples=80, deadline=None)
@given(
    pixels=hnp.arrays(
        dtype=st.sampled_from(DTYPES).map(np.dtype),
        shape=hnp.array_shapes(min_dims=2, max_dims=4, min_side=1, max_side=12),
    ),
    pattern=st.sampled_from(PATTERNS),
)
def test_in_memory_round_trip_any_shape_dtype_pattern(pixels: np.ndarray, pattern: ZigzagPattern) -> None:
    back = decrypt_pixels(encrypt_image(pixels, KEY, pattern=pattern), KEY)
    assert isinstance(back, np.ndarray)
    assert back.dtype == pixels.dtype and back.shape == pixels.shape
    np.testing.assert_array_equal(back, pixels)  # NaNs compare equal here


@pytest.mark.parametrize("pattern", PATTERNS)
def test_medical_image_round_trip_keeps_metadata(pattern: ZigzagPattern) -> None:
    rgb = np.random.default_rng(1).integers(0, 256, (2, 9, 7, 3), dtype=np.uint8)
    image = MedicalImage(
        pixels=rgb,
        photometric="RGB",
        samples_per_pixel=3,
        channels_last=True,
        modality="US",
        spacing=(0.5, 0.25),
        metadata={"note": "x"},
    )
    back = decrypt_image(encrypt_image(image, KEY, pattern=pattern), KEY)
    assert isinstance(back, MedicalImage)
    np.testing.assert_array_equal(back.pixels, rgb)
    assert (back.photometric, back.channels_last, back.modality, back.spacing) == ("RGB", True, "US", (0.5, 0.25))
    assert back.metadata == {"note": "x"}


def test_every_bit_flip_and_every_truncation_is_detected() -> None:
    pixels = np.arange(60, dtype=np.uint16).reshape(6, 10)
    data = _encrypt_from_parts(
        pixels, KEY, pattern="diagonal", salt=os.urandom(32), nonce_prefix=os.urandom(7), segment_size=1024
    )
    for index in range(len(data)):
        for bit in range(8):
            damaged = bytearray(data)
            damaged[index] ^= 1 << bit
            with pytest.raises(AuthenticationError) as info:
                decrypt_image(bytes(damaged), KEY)
            assert str(info.value) == AuthenticationError.MESSAGE
    for cut in range(len(data)):
        with pytest.raises(AuthenticationError):
            decrypt_image(data[:cut], KEY)
    with pytest.raises(AuthenticationError):
        decrypt_image(data + b"\x00", KEY)


def test_wrong_key_same_message() -> None:
    data = encrypt_image(np.zeros((4, 4), np.uint8), KEY)
    with pytest.raises(AuthenticationError) as info:
        decrypt_image(data, generate_key())
    assert str(info.value) == AuthenticationError.MESSAGE


def test_not_a_container() -> None:
    with pytest.raises(FormatError):
        decrypt_image(b"hello world, not a container", KEY)


def test_containers_are_fresh_each_time() -> None:
    pixels = np.zeros((8, 8), np.uint8)
    a, b = encrypt_image(pixels, KEY), encrypt_image(pixels, KEY)
    assert a != b
    assert parse_header(a).salt != parse_header(b).salt


@pytest.mark.parametrize("pattern", PATTERNS)
def test_cipher_image_is_positional(pattern: ZigzagPattern) -> None:
    """Same salt and nonce (the seam): c1 ⊕ c2 = p1 ⊕ p2 pixel by pixel, so the cipher
    image's pixel (r, c) is the encryption of plain pixel (r, c)."""
    rng = np.random.default_rng(3)
    p1 = rng.integers(0, 65536, (2, 11, 13), dtype=np.uint16)
    p2 = rng.integers(0, 65536, (2, 11, 13), dtype=np.uint16)
    salt, prefix = os.urandom(32), os.urandom(7)
    c1 = cipher_image(_encrypt_from_parts(p1, KEY, pattern=pattern, salt=salt, nonce_prefix=prefix, segment_size=1024))
    c2 = cipher_image(_encrypt_from_parts(p2, KEY, pattern=pattern, salt=salt, nonce_prefix=prefix, segment_size=1024))
    assert c1.shape == p1.shape and c1.dtype == np.dtype("<u2")
    np.testing.assert_array_equal(c1 ^ c2, p1 ^ p2)
    assert np.mean(c1 != p1) > 0.99


@pytest.mark.parametrize("channels_last", [False, True])
def test_cipher_image_reads_files_in_batches_across_segments(
    channels_last: bool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One plane per batch, 1 KiB segments: the cipher image read from a file, into a memory
    map, is the one read from bytes and stays positional (c1 ⊕ c2 = p1 ⊕ p2)."""
    from deepkedi.cipher import layout

    monkeypatch.setattr(layout, "BATCH_BYTES", 1)  # rounded up to one whole plane
    rng = np.random.default_rng(8)
    shape = (5, 23, 19, 3) if channels_last else (5, 23, 19)
    p1, p2 = (rng.integers(0, 65536, shape, dtype=np.uint16) for _ in range(2))
    images = [
        MedicalImage(pixels=p, photometric="RGB", samples_per_pixel=3, channels_last=True) if channels_last else p
        for p in (p1, p2)
    ]
    salt, prefix = os.urandom(32), os.urandom(7)
    c1, c2 = (
        _encrypt_from_parts(im, KEY, pattern="diagonal", salt=salt, nonce_prefix=prefix, segment_size=1024)
        for im in images
    )
    assert parse_header(c1).segment_count >= 5
    path = tmp_path / "c1.kedi"
    path.write_bytes(c1)
    mapped = np.lib.format.open_memmap(tmp_path / "cipher.npy", mode="w+", dtype="<u2", shape=shape)
    assert cipher_image(path, out=mapped) is mapped
    np.testing.assert_array_equal(mapped, cipher_image(c1))
    np.testing.assert_array_equal(cipher_image(c1) ^ cipher_image(c2), p1 ^ p2)
    with pytest.raises(ValueError, match="shape"):
        cipher_image(path, out=np.empty(shape[1:], "<u2"))
    path.write_bytes(c1[:-1])
    with pytest.raises(AuthenticationError):
        cipher_image(path)


def test_cipher_image_of_a_uniform_image_looks_uniform() -> None:
    data = encrypt_image(np.full((256, 256), 128, np.uint8), KEY)
    counts = np.bincount(cipher_image(data).ravel(), minlength=256)
    chi2 = ((counts - counts.mean()) ** 2 / counts.mean()).sum()
    # 255 d.o.f. A fresh key and salt every run: at α = 10⁻⁹ (critical value 414.5) a sound
    # cipher never fails here by chance, while a constant image under a broken keystream
    # gives a χ² in the tens of thousands.
    assert chi2 < 414.5


CORPUS = sample_corpus()


@pytest.mark.parametrize("sample", CORPUS, ids=[s.name for s in CORPUS])
def test_corpus_file_round_trip_byte_exact(sample, tmp_path: Path) -> None:
    original = _sha(sample.path)
    stat_before = sample.path.stat()
    for pattern in PATTERNS:
        container = tmp_path / f"{pattern.value}.kedi"
        restored = tmp_path / f"{pattern.value}-{sample.path.name}"
        encrypt_file(sample.path, container, KEY, pattern=pattern)
        decrypt_file(container, restored, KEY)
        assert _sha(restored) == original
        image = decrypt_image(container.read_bytes(), KEY)
        assert isinstance(image, MedicalImage)
    assert _sha(sample.path) == original
    assert sample.path.stat().st_mtime_ns == stat_before.st_mtime_ns


def test_multi_segment_volume_file(tmp_path: Path) -> None:
    volume = np.random.default_rng(5).integers(-2000, 3000, (7, 64, 48), dtype=np.int16)
    src = tmp_path / "v.npy"
    np.save(src, volume)
    from deepkedi.cipher.hybrid import _encrypt_file_from_parts

    header = _encrypt_file_from_parts(
        src,
        tmp_path / "v.kedi",
        KEY,
        pattern="vertical",
        salt=os.urandom(32),
        nonce_prefix=os.urandom(7),
        segment_size=1024,
    )
    assert header.segment_count > 40
    decrypt_file(tmp_path / "v.kedi", tmp_path / "back.npy", KEY)
    assert (tmp_path / "back.npy").read_bytes() == src.read_bytes()
    data = bytearray((tmp_path / "v.kedi").read_bytes())
    for where in (header.encoded_length + 3000, len(data) - 5):
        damaged = bytearray(data)
        damaged[where] ^= 0x80
        (tmp_path / "bad.kedi").write_bytes(damaged)
        with pytest.raises(AuthenticationError):
            decrypt_file(tmp_path / "bad.kedi", tmp_path / "none.npy", KEY)
        assert not (tmp_path / "none.npy").exists()
        assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp files left


def test_decrypt_refuses_to_clobber_and_to_overwrite_input(tmp_path: Path) -> None:
    src = tmp_path / "a.npy"
    np.save(src, np.ones((4, 4), np.uint8))
    encrypt_file(src, tmp_path / "a.kedi", KEY)
    with pytest.raises(OutputExistsError):
        encrypt_file(src, tmp_path / "a.kedi", KEY)
    with pytest.raises(ValueError):
        encrypt_file(src, src, KEY, force=True)
    (tmp_path / "existing.npy").write_bytes(b"keep me")
    with pytest.raises(OutputExistsError):
        decrypt_file(tmp_path / "a.kedi", tmp_path / "existing.npy", KEY)
    assert (tmp_path / "existing.npy").read_bytes() == b"keep me"
    decrypt_file(tmp_path / "a.kedi", tmp_path / "existing.npy", KEY, force=True)
    assert (tmp_path / "existing.npy").read_bytes() == src.read_bytes()


def test_unsupported_input(tmp_path: Path) -> None:
    bad = tmp_path / "bad.dcm"
    bad.write_bytes(os.urandom(1000))
    with pytest.raises(UnsupportedImageError):
        encrypt_file(bad, tmp_path / "out.kedi", KEY)
    assert not (tmp_path / "out.kedi").exists()


def test_in_memory_container_decrypts_to_a_file(tmp_path: Path) -> None:
    pixels = np.arange(64, dtype=np.uint16).reshape(8, 8)
    (tmp_path / "c.kedi").write_bytes(encrypt_image(pixels, KEY))
    decrypt_file(tmp_path / "c.kedi", tmp_path / "out.npy", KEY)
    np.testing.assert_array_equal(np.load(tmp_path / "out.npy"), pixels)


# Containers made with the right key but a malformed restoration meta (only someone holding the key can
# make one): every such container is refused as AuthenticationError, never a traceback (docs/FORMAT.md 5.1).
def _deep(meta: dict) -> bytes:
    return b'{"restore": "none", "image": {"metadata": ' + b"[" * 100_000 + b"]" * 100_000 + b"}}"


MALFORMED_META = {
    "object dtype": lambda m: {**m, "image": {**m["image"], "dtype": "|O"}},
    "float128 dtype": lambda m: {**m, "image": {**m["image"], "dtype": "<f16"}},
    "dtype not a string": lambda m: {**m, "image": {**m["image"], "dtype": 7}},
    "no image": lambda m: {k: v for k, v in m.items() if k != "image"},
    "image not an object": lambda m: {**m, "image": [1]},
    "metadata not an object": lambda m: {**m, "image": {**m["image"], "metadata": [1]}},
    "spacing not numbers": lambda m: {**m, "image": {**m["image"], "spacing": ["x", {}]}},
    "samples not a number": lambda m: {**m, "image": {**m["image"], "samples_per_pixel": "three"}},
    "channels_last not a boolean": lambda m: {**m, "image": {**m["image"], "channels_last": "yes"}},
    "stored dtype object": lambda m: {**m, "stored_dtype": "|O"} if "stored_dtype" in m else {**m, "restore": 1},
    "no stored dtype": lambda m: (
        {k: v for k, v in m.items() if k != "stored_dtype"} if "stored_dtype" in m else {**m, "restore": None}
    ),
    "no digest": lambda m: {k: v for k, v in m.items() if k != "sha256"} if "sha256" in m else {**m, "image": None},
    "meta not an object": lambda m: [m],
}


def _craft_meta(monkeypatch: pytest.MonkeyPatch, make: object) -> None:
    import json

    from deepkedi.cipher import hybrid

    def crafted(meta: dict, prefix_length: int) -> bytes:
        # A file's head must still carry the SHA-256 placeholder the writer patches after the one pass;
        # where the crafted meta dropped it, it goes in a slot the reader ignores.
        slot = {"sha256": meta["sha256"]} if "sha256" in meta else None
        if make is _deep:
            blob = _deep(meta)
            if slot is not None:
                blob = b'{"slot":' + json.dumps(slot, separators=(",", ":")).encode("utf-8") + b"," + blob[1:]
        else:
            made = make(meta)  # type: ignore[operator]
            if slot is not None and not (isinstance(made, dict) and "sha256" in made):
                made = {**made, "slot": slot} if isinstance(made, dict) else [*made, slot]
            blob = json.dumps(made, separators=(",", ":")).encode("utf-8")
        return hybrid._U32.pack(len(blob)) + blob + hybrid._U64.pack(prefix_length)

    monkeypatch.setattr(hybrid, "_residual_head", crafted)


@pytest.mark.parametrize("make", [*MALFORMED_META.values(), _deep], ids=[*MALFORMED_META, "nested 100000 deep"])
def test_authenticated_but_malformed_meta_is_refused(
    make: object, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    image = MedicalImage(pixels=np.arange(48, dtype=np.uint16).reshape(6, 8), metadata={"note": "x"})
    source = tmp_path / "plain.npy"
    np.save(source, image.pixels)
    with monkeypatch.context() as patch:
        _craft_meta(patch, make)
        in_memory = encrypt_image(image, KEY)
        encrypt_file(source, tmp_path / "file.kedi", KEY)
    (tmp_path / "memory.kedi").write_bytes(in_memory)
    with pytest.raises(AuthenticationError):
        decrypt_image(in_memory, KEY)
    for container in ("memory.kedi", "file.kedi"):
        with pytest.raises(AuthenticationError):
            decrypt_file(tmp_path / container, tmp_path / "restored.npy", KEY)
        assert not (tmp_path / "restored.npy").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file.kedi", "memory.kedi", "plain.npy"]


@pytest.mark.parametrize("dtype, dims", [(np.longdouble, 2), (np.uint8, 17)])
def test_images_the_container_cannot_hold_are_input_errors(tmp_path: Path, dtype: type, dims: int) -> None:
    if dtype is np.longdouble and np.dtype(dtype).itemsize <= 8:
        pytest.fail("this platform's long double is a double; the float128 case needs x86-64 or aarch64")
    source = tmp_path / "plain.npy"
    np.save(source, np.zeros((1,) * (dims - 2) + (4, 4), dtype=dtype))
    with pytest.raises(UnsupportedImageError, match=r"plain\.npy: the container cannot hold this image"):
        encrypt_file(source, tmp_path / "c.kedi", KEY)
    assert not (tmp_path / "c.kedi").exists()


def test_a_fifo_is_not_a_container(tmp_path: Path, fifo: Path) -> None:
    with pytest.raises(FormatError, match="FIFO"):
        decrypt_file(fifo, tmp_path / "out.npy", generate_key(gan=False))
    with pytest.raises(FormatError, match="FIFO"):
        cipher_image(fifo)
    assert not (tmp_path / "out.npy").exists()
    with pytest.raises(FormatError, match="cannot be read"):  # a missing file keeps its error
        decrypt_file(tmp_path / "absent.kedi", tmp_path / "out.npy", generate_key(gan=False))


def _volume_file(tmp_path: Path) -> Path:
    src = tmp_path / "vol.npy"
    np.save(src, np.random.default_rng(3).integers(0, 4000, (6, 64, 64), dtype=np.uint16))
    return src


def _rewrite_pixels(src: Path, *, keep_mtime: bool) -> None:
    before = src.stat()
    with open(src, "r+b") as fh:
        fh.seek(-100, os.SEEK_END)
        fh.write(os.urandom(100))
    if keep_mtime:  # as `cp -p` or `rsync -t` would leave it
        os.utime(src, ns=(before.st_atime_ns, before.st_mtime_ns))


def test_file_rewritten_unnoticed_during_encryption_still_decrypts(tmp_path: Path) -> None:
    # The recorded SHA-256 covers the bytes encrypted, read once: whatever happens to
    # the file meanwhile, a container that is written restores byte for byte.
    src = _volume_file(tmp_path)
    calls = []

    def rewrite_after_the_header(done: int, total: int) -> None:
        if not calls:  # first call: the restoration section is in, the pixels are not read yet
            _rewrite_pixels(src, keep_mtime=True)
        calls.append(done)

    encrypt_file(src, tmp_path / "v.kedi", KEY, progress=rewrite_after_the_header)
    decrypt_file(tmp_path / "v.kedi", tmp_path / "back.npy", KEY)
    assert (tmp_path / "back.npy").read_bytes() == src.read_bytes()


def test_file_rewritten_during_encryption_fails_and_writes_nothing(tmp_path: Path) -> None:
    src = _volume_file(tmp_path)
    calls = []

    def rewrite_after_the_header(done: int, total: int) -> None:
        if not calls:
            _rewrite_pixels(src, keep_mtime=False)
        calls.append(done)

    with pytest.raises(UnsupportedImageError, match="changed"):
        encrypt_file(src, tmp_path / "v.kedi", KEY, progress=rewrite_after_the_header)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["vol.npy"]


def test_verbatim_file_hashes_the_bytes_it_stores(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A compressed file is carried whole: the digest must be of those bytes, not of a later read.
    from deepkedi.imaging import write_image

    src = tmp_path / "img.png"
    write_image(MedicalImage(np.random.default_rng(1).integers(0, 255, (32, 32), dtype=np.uint8)), src)
    original = src.read_bytes()
    read_bytes = Path.read_bytes

    def read_then_rewrite(path: Path) -> bytes:
        data = read_bytes(path)
        if path == src:  # rewritten (same size, same mtime) right after it was read
            before = os.stat(src)
            with open(src, "r+b") as fh:
                fh.seek(-1, os.SEEK_END)
                fh.write(bytes([data[-1] ^ 1]))
            os.utime(src, ns=(before.st_atime_ns, before.st_mtime_ns))
        return data

    monkeypatch.setattr(Path, "read_bytes", read_then_rewrite)
    encrypt_file(src, tmp_path / "i.kedi", KEY)
    monkeypatch.undo()
    decrypt_file(tmp_path / "i.kedi", tmp_path / "back.png", KEY)
    assert (tmp_path / "back.png").read_bytes() == original


def test_outputs_never_wider_than_their_input_or_0600_when_decrypted(tmp_path: Path) -> None:
    import stat

    old = os.umask(0o022)
    try:
        src = tmp_path / "img.npy"
        np.save(src, np.eye(6, dtype=np.uint16))
        for src_mode, container_mode, restored_mode in [
            (0o644, 0o644, 0o600),
            (0o640, 0o640, 0o600),
            (0o600, 0o600, 0o600),
            (0o400, 0o400, 0o400),
        ]:
            src.chmod(src_mode)
            encrypt_file(src, tmp_path / "c.kedi", KEY, force=True)
            assert stat.S_IMODE((tmp_path / "c.kedi").stat().st_mode) == container_mode
            decrypt_file(tmp_path / "c.kedi", tmp_path / "back.npy", KEY, force=True)
            assert stat.S_IMODE((tmp_path / "back.npy").stat().st_mode) == restored_mode
            (tmp_path / "c.kedi").chmod(0o600)
            (tmp_path / "back.npy").chmod(0o600)
    finally:
        os.umask(old)
