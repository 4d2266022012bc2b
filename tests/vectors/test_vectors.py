"""Known-answer vectors (docs/FORMAT.md §8): each case fails in the layer it names."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from _records import array_from_record
from deepkedi.cipher.format import parse_header
from deepkedi.cipher.hybrid import (
    _encrypt_file_from_parts,
    _encrypt_from_parts,
    _encrypt_opaque_file_from_parts,
    decrypt_file,
    decrypt_image,
    decrypt_pixels,
)
from deepkedi.errors import AuthenticationError, FormatError
from deepkedi.imaging import MedicalImage
from deepkedi.keys import Key, read_key_document

HERE = Path(__file__).parent
CASES = sorted(HERE.glob("*.json"))


def _key(doc: dict, tmp_path: Path) -> Key:
    path = tmp_path / "vector.key"
    path.write_text(json.dumps(doc))
    read_key_document(path)  # the vector's key is a valid key file document
    from deepkedi.keys import load_key

    return load_key(path)


def test_every_expectation_is_covered() -> None:
    expects = {json.loads(p.read_text())["expect"] for p in CASES}
    assert expects == {"success", "header failure", "length failure", "tag failure", "wrong key", "not a container"}


@pytest.mark.parametrize("case_path", CASES, ids=[p.stem for p in CASES])
def test_vector(case_path: Path, tmp_path: Path) -> None:
    case = json.loads(case_path.read_text())
    key = _key(case["key"], tmp_path)
    data = bytes.fromhex(case["container"])
    expect = case["expect"]

    if expect == "not a container":
        with pytest.raises(FormatError):
            parse_header(data)
        return
    if expect == "header failure":
        with pytest.raises(AuthenticationError):
            parse_header(data)
        return
    header = parse_header(data)
    if expect == "wrong key":
        assert header.key_id != key.key_id
    else:
        assert header.key_id == key.key_id
    if expect == "length failure":
        assert header.container_length != len(data)
    elif expect in ("tag failure", "success"):
        assert header.container_length == len(data)
    if expect != "success":
        with pytest.raises(AuthenticationError):
            decrypt_image(data, key)
        src = tmp_path / "c.kedi"
        src.write_bytes(data)
        with pytest.raises(AuthenticationError):
            decrypt_file(src, tmp_path / "out.npy", key)
        assert not (tmp_path / "out.npy").exists()
        return

    salt, prefix = bytes.fromhex(case["salt"]), bytes.fromhex(case["nonce_prefix"])
    if header.opaque:  # a file sealed whole (§5.3): no pixels, the file restored byte for byte
        src = tmp_path / "report.txt"
        src.write_bytes(bytes.fromhex(case["file"]))
        again = tmp_path / "again.kedi"
        _encrypt_opaque_file_from_parts(
            src, again, key, salt=salt, nonce_prefix=prefix, segment_size=header.segment_size
        )
        assert again.read_bytes() == data  # the seam is deterministic
        container = tmp_path / "c.kedi"
        container.write_bytes(data)
        decrypt_file(container, tmp_path / "restored.txt", key)
        assert (tmp_path / "restored.txt").read_bytes() == src.read_bytes()
        with pytest.raises(FormatError):
            decrypt_pixels(data, key)
        return
    expected = array_from_record(case["pixels"])
    if "file" in case:
        src = tmp_path / "volume.npy"
        src.write_bytes(bytes.fromhex(case["file"]))
        again = tmp_path / "again.kedi"
        _encrypt_file_from_parts(
            src, again, key, pattern=header.pattern, salt=salt, nonce_prefix=prefix, segment_size=header.segment_size
        )
        assert again.read_bytes() == data  # the seam is deterministic
        container = tmp_path / "c.kedi"
        container.write_bytes(data)
        decrypt_file(container, tmp_path / "restored.npy", key)
        assert (tmp_path / "restored.npy").read_bytes() == bytes.fromhex(case["file"])
        image = decrypt_image(data, key)
        assert isinstance(image, MedicalImage)
        np.testing.assert_array_equal(image.pixels, expected)
        return
    pixels = decrypt_pixels(data, key)
    assert pixels.dtype == expected.dtype
    np.testing.assert_array_equal(pixels, expected)
    # Containers of a MedicalImage (interleaved colour) carry its description; those of an array do not.
    source = decrypt_image(data, key) if header.channels_last else expected
    again = _encrypt_from_parts(
        source, key, pattern=header.pattern, salt=salt, nonce_prefix=prefix, segment_size=header.segment_size
    )
    assert again == data
