"""Known-answer vectors of suite 2, ``paper`` (docs/FORMAT.md §9): containers, key image ids, failures."""

from __future__ import annotations

import hashlib
import json
import struct
from pathlib import Path

import numpy as np
import pytest

from _records import array_from_record
from deepkedi.cipher.format import parse_header
from deepkedi.cipher.paper import decrypt_image_paper, encrypt_image_paper
from deepkedi.errors import AuthenticationError
from deepkedi.keys import KeyImage
from deepkedi.transforms.zigzag import scan_order

CASES = sorted((Path(__file__).parent / "paper").glob("*.json"))


def test_the_cases_cover_every_outcome() -> None:
    expects = {json.loads(p.read_text())["expect"] for p in CASES}
    assert expects == {"success", "wrong key", "header failure", "undetected modification"}


@pytest.mark.parametrize("case_path", CASES, ids=[p.stem for p in CASES])
def test_paper_vector(case_path: Path) -> None:
    case = json.loads(case_path.read_text())
    key = KeyImage(array_from_record(case["key_image"]))
    rows, cols = key.shape
    # §9.3, restated: SHA-256(label ‖ u8 bits ‖ u64 rows ‖ u64 cols ‖ little-endian words)[:16].
    words = key.pixels.astype(key.pixels.dtype.newbyteorder("<")).tobytes()
    expected_id = hashlib.sha256(b"deepkedi/v1 paper key id" + struct.pack(">BQQ", key.bits, rows, cols) + words)
    assert key.key_id.hex() == case["key_image"]["key_id"] == expected_id.hexdigest()[:32]
    data = bytes.fromhex(case["container"])
    expect = case["expect"]
    if expect == "header failure":
        with pytest.raises(AuthenticationError):
            parse_header(data)
        return
    if expect == "wrong key":
        with pytest.raises(AuthenticationError):
            decrypt_image_paper(data, key)
        return
    pixels = array_from_record(case["pixels"])
    restored = decrypt_image_paper(data, key, despeckle=False)
    assert restored.dtype == pixels.dtype
    np.testing.assert_array_equal(restored, pixels)
    if expect == "undetected modification":
        return
    assert encrypt_image_paper(pixels, key, pattern=parse_header(data).pattern, speckle=False) == data
    # §9.2, restated with the scan order: c[i] = plane[order[i]] XOR key[i], words little-endian.
    header = parse_header(data)
    order = scan_order(rows, cols, header.pattern)
    unsigned = pixels.view(np.uint16) if pixels.dtype.itemsize == 2 else pixels
    planes = unsigned.reshape(-1, rows * cols)
    cipher = planes[:, order] ^ key.pixels.astype(unsigned.dtype).ravel()
    assert data[header.encoded_length :] == cipher.astype(unsigned.dtype.newbyteorder("<")).tobytes()
