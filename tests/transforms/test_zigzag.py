"""Tests for deepkedi.transforms.zigzag: the three zigzag scans of Deep-KEDI."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from deepkedi.transforms import (
    ZigzagPattern,
    inverse_order,
    scan_order,
    zigzag_scan,
    zigzag_unscan,
)

PATTERNS = list(ZigzagPattern)

# ITU-T T.81 Figure A.6: the zigzag position of each coefficient of an 8 x 8 block.
JPEG_ZIGZAG_POSITIONS = np.array(
    [
        [0, 1, 5, 6, 14, 15, 27, 28],
        [2, 4, 7, 13, 16, 26, 29, 42],
        [3, 8, 12, 17, 25, 30, 41, 43],
        [9, 11, 18, 24, 31, 40, 44, 53],
        [10, 19, 23, 32, 39, 45, 52, 54],
        [20, 22, 33, 38, 46, 51, 55, 60],
        [21, 34, 37, 47, 50, 56, 59, 61],
        [35, 36, 48, 49, 57, 58, 62, 63],
    ]
)

# Shapes that reach every branch: single rows/columns, odd and even sizes,
# widths whose row pitch is a multiple of 128 bytes (staged transpose), and
# more rows than one transpose strip (128).
SHAPES = [
    (1, 1), (1, 7), (7, 1), (2, 3), (3, 2), (5, 5), (8, 8), (4, 9), (9, 4),
    (64, 64), (130, 64), (64, 130), (129, 257), (256, 33),
]  # fmt: skip


def naive_order(rows: int, cols: int, pattern: ZigzagPattern) -> list[int]:
    """Walk the plane pixel by pixel, as the definitions read (reference only)."""
    order = []
    if pattern is ZigzagPattern.HORIZONTAL:
        for r in range(rows):
            columns = range(cols) if r % 2 == 0 else range(cols - 1, -1, -1)
            order += [r * cols + c for c in columns]
    elif pattern is ZigzagPattern.VERTICAL:
        for c in range(cols):
            rows_walked = range(rows) if c % 2 == 0 else range(rows - 1, -1, -1)
            order += [r * cols + c for r in rows_walked]
    else:
        for d in range(rows + cols - 1):
            rows_walked = range(d + 1) if d % 2 == 1 else range(d, -1, -1)
            order += [r * cols + d - r for r in rows_walked if r < rows and 0 <= d - r < cols]
    return order


def gather_reference(planes: np.ndarray, pattern: ZigzagPattern, channels_last: bool = False):
    """``flat[scan_order]`` on each plane: what every fast path must equal."""
    rows, cols = planes.shape[-3:-1] if channels_last else planes.shape[-2:]
    order = scan_order(rows, cols, pattern)
    if channels_last:
        flat = planes.reshape(*planes.shape[:-3], rows * cols, planes.shape[-1])
        return flat[..., order, :]
    return planes.reshape(*planes.shape[:-2], rows * cols)[..., order]


def random_planes(shape, dtype, seed=0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    dtype = np.dtype(dtype)
    if dtype.kind == "b":
        return rng.integers(0, 2, size=shape).astype(dtype)
    if dtype.kind == "f":
        return rng.standard_normal(shape).astype(dtype)
    info = np.iinfo(dtype)
    return rng.integers(info.min, info.max, size=shape, endpoint=True).astype(dtype)


# ---------------------------------------------------------------- the pattern enum


def test_pattern_members_are_their_strings():
    assert [p.value for p in ZigzagPattern] == ["vertical", "horizontal", "diagonal"]
    assert ZigzagPattern.DIAGONAL == "diagonal"
    assert ZigzagPattern("horizontal") is ZigzagPattern.HORIZONTAL
    assert ZigzagPattern(" Vertical ") is ZigzagPattern.VERTICAL


@pytest.mark.parametrize("bad", ["spiral", "", 3, None])
def test_unknown_pattern_names_the_valid_ones(bad):
    with pytest.raises(ValueError, match="'vertical', 'horizontal', 'diagonal'"):
        ZigzagPattern(bad)
    with pytest.raises(ValueError, match="'vertical'"):
        scan_order(2, 2, bad)
    with pytest.raises(ValueError, match="'vertical'"):
        zigzag_scan(np.zeros((2, 2)), bad)


# ---------------------------------------------------------------- permutations


@pytest.mark.parametrize("pattern", PATTERNS)
@pytest.mark.parametrize("shape", SHAPES)
def test_scan_order_is_a_cached_read_only_permutation(shape, pattern):
    order = scan_order(*shape, pattern)
    assert order.dtype == np.intp and order.ndim == 1
    assert np.array_equal(np.sort(order), np.arange(shape[0] * shape[1]))
    assert not order.flags.writeable
    assert scan_order(*shape, pattern.value) is order  # strings share the cache
    inverse = inverse_order(*shape, pattern)
    assert not inverse.flags.writeable
    assert np.array_equal(inverse[order], np.arange(order.size))
    assert np.array_equal(order[inverse], np.arange(order.size))


@pytest.mark.parametrize("pattern", PATTERNS)
def test_scan_order_matches_a_pixel_by_pixel_walk(pattern):
    for rows, cols in itertools.product(range(1, 10), repeat=2):
        assert scan_order(rows, cols, pattern).tolist() == naive_order(rows, cols, pattern)


def test_diagonal_on_8x8_is_the_jpeg_zigzag():
    positions = inverse_order(8, 8, ZigzagPattern.DIAGONAL).reshape(8, 8)
    assert np.array_equal(positions, JPEG_ZIGZAG_POSITIONS)
    natural = np.argsort(JPEG_ZIGZAG_POSITIONS.ravel())  # libjpeg's jpeg_natural_order
    assert np.array_equal(scan_order(8, 8, "diagonal"), natural)
    assert scan_order(8, 8, "diagonal")[:10].tolist() == [0, 1, 8, 16, 9, 2, 3, 10, 17, 24]


HAND_WRITTEN = {
    # [[0, 1, 2],
    #  [3, 4, 5]]
    (2, 3): {
        "horizontal": [0, 1, 2, 5, 4, 3],
        "vertical": [0, 3, 4, 1, 2, 5],
        "diagonal": [0, 1, 3, 4, 2, 5],
    },
    # [[0, 1],
    #  [2, 3],
    #  [4, 5]]
    (3, 2): {
        "horizontal": [0, 1, 3, 2, 4, 5],
        "vertical": [0, 2, 4, 5, 3, 1],
        "diagonal": [0, 1, 2, 4, 3, 5],
    },
}


@pytest.mark.parametrize("shape", list(HAND_WRITTEN))
@pytest.mark.parametrize("pattern", ["horizontal", "vertical", "diagonal"])
def test_hand_written_small_scans(shape, pattern):
    expected = HAND_WRITTEN[shape][pattern]
    plane = np.arange(6).reshape(shape)
    assert scan_order(*shape, pattern).tolist() == expected
    assert zigzag_scan(plane, pattern).tolist() == expected
    assert np.array_equal(zigzag_unscan(np.array(expected), *shape, pattern), plane)


@pytest.mark.parametrize("rows, cols", [(0, 3), (3, 0), (-1, 2)])
def test_plane_sizes_must_be_positive(rows, cols):
    with pytest.raises(ValueError, match="at least 1"):
        scan_order(rows, cols, "diagonal")


@pytest.mark.parametrize("rows", [2.0, "2", True, None])
def test_plane_sizes_must_be_integers(rows):
    with pytest.raises(TypeError):
        inverse_order(rows, 2, "diagonal")
    with pytest.raises(TypeError):
        zigzag_unscan(np.zeros(4), rows, 2, "diagonal")


def test_numpy_integer_sizes_are_accepted():
    assert scan_order(np.int64(2), np.uint8(3), "vertical").tolist() == [0, 3, 4, 1, 2, 5]


# ---------------------------------------------------------------- scan and unscan


@pytest.mark.parametrize("pattern", PATTERNS)
@pytest.mark.parametrize("shape", SHAPES)
def test_fast_paths_equal_the_gather_reference(shape, pattern):
    for dtype in (np.uint8, np.uint16):
        planes = random_planes(shape, dtype)
        sequence = zigzag_scan(planes, pattern)
        assert sequence.dtype == planes.dtype
        assert np.array_equal(sequence, gather_reference(planes, pattern))
        assert np.array_equal(zigzag_unscan(sequence, *shape, pattern), planes)


@settings(max_examples=60, deadline=None)
@given(
    rows=st.integers(1, 40),
    cols=st.integers(1, 40),
    pattern=st.sampled_from(PATTERNS),
    dtype=st.sampled_from(["u1", "u2", "i2", "i4", "f4", "?", ">u2"]),
    lead=st.sampled_from([(), (3,), (2, 2)]),
    seed=st.integers(0, 2**32 - 1),
)
def test_scan_matches_reference_and_unscan_inverts(rows, cols, pattern, dtype, lead, seed):
    planes = random_planes((*lead, rows, cols), dtype, seed)
    sequence = zigzag_scan(planes, pattern)
    assert sequence.shape == (*lead, rows * cols)
    assert sequence.dtype == planes.dtype
    assert np.array_equal(sequence, gather_reference(planes, pattern))
    restored = zigzag_unscan(sequence, rows, cols, pattern)
    assert restored.dtype == planes.dtype
    assert np.array_equal(restored, planes)


@settings(max_examples=40, deadline=None)
@given(
    rows=st.integers(1, 40),
    cols=st.integers(1, 40),
    samples=st.sampled_from([1, 3, 4]),
    pattern=st.sampled_from(PATTERNS),
    dtype=st.sampled_from(["u1", "u2", "f4", ">u2"]),
    seed=st.integers(0, 2**32 - 1),
)
def test_channels_last_moves_the_samples_of_a_pixel_together(rows, cols, samples, pattern, dtype, seed):
    planes = random_planes((2, rows, cols, samples), dtype, seed)
    sequence = zigzag_scan(planes, pattern, channels_last=True)
    assert sequence.shape == (2, rows * cols, samples)
    assert np.array_equal(sequence, gather_reference(planes, pattern, channels_last=True))
    restored = zigzag_unscan(sequence, rows, cols, pattern, channels_last=True)
    assert np.array_equal(restored, planes)


@pytest.mark.parametrize("pattern", PATTERNS)
@pytest.mark.parametrize("samples", [3, 4])
def test_channels_last_on_large_planes(pattern, samples):
    # 4 uint16 samples fold into one uint64 word; 3 stay a sample axis.
    planes = random_planes((130, 256, samples), np.uint16)
    sequence = zigzag_scan(planes, pattern, channels_last=True)
    assert np.array_equal(sequence, gather_reference(planes, pattern, channels_last=True))
    assert np.array_equal(zigzag_unscan(sequence, 130, 256, pattern, channels_last=True), planes)


@pytest.mark.parametrize("pattern", PATTERNS)
def test_each_slice_of_a_volume_is_scanned_on_its_own(pattern):
    volume = random_planes((2, 3, 5, 7), np.int16)
    sequences = zigzag_scan(volume, pattern)
    assert sequences.shape == (2, 3, 35)
    for index in np.ndindex(2, 3):
        assert np.array_equal(sequences[index], zigzag_scan(volume[index], pattern))


@pytest.mark.parametrize("pattern", PATTERNS)
def test_non_contiguous_inputs(pattern):
    base = random_planes((40, 2 * 33), np.uint16)
    for planes in (base[:, ::2], base.T, base[::-1], np.broadcast_to(base[0], (3, 66))):
        sequence = zigzag_scan(planes, pattern)
        assert np.array_equal(sequence, gather_reference(np.ascontiguousarray(planes), pattern))
        rows, cols = planes.shape
        assert np.array_equal(zigzag_unscan(sequence, rows, cols, pattern), planes)
    sequence = zigzag_scan(base, pattern)
    padded = np.zeros((2 * sequence.size,), sequence.dtype)
    padded[::2] = sequence
    assert np.array_equal(zigzag_unscan(padded[::2], 40, 66, pattern), base)


@pytest.mark.parametrize("pattern", PATTERNS)
def test_out_receives_the_result(pattern):
    planes = random_planes((3, 6, 5), np.uint16)
    out = np.empty((3, 30), np.uint16)
    assert zigzag_scan(planes, pattern, out=out) is out
    assert np.array_equal(out, gather_reference(planes, pattern))
    restored = np.empty_like(planes)
    assert zigzag_unscan(out, 6, 5, pattern, out=restored) is restored
    assert np.array_equal(restored, planes)


@pytest.mark.parametrize("pattern", PATTERNS)
def test_out_of_another_dtype_casts_like_copyto(pattern):
    planes = random_planes((6, 5), np.uint8)
    wider = np.empty(30, np.uint32)
    zigzag_scan(planes, pattern, out=wider)
    assert np.array_equal(wider, gather_reference(planes, pattern).astype(np.uint32))
    big_endian = random_planes((6, 5), ">u2")
    native = np.empty(30, "<u2")
    zigzag_scan(big_endian, pattern, out=native)
    assert np.array_equal(native, gather_reference(big_endian, pattern))
    back = np.empty((6, 5), ">u2")
    zigzag_unscan(native, 6, 5, pattern, out=back)
    assert np.array_equal(back, big_endian)
    with pytest.raises(TypeError):  # numpy.copyto refuses float -> int ("same_kind")
        zigzag_scan(planes.astype(np.float32), pattern, out=np.empty(30, np.int16))


@pytest.mark.parametrize("pattern", PATTERNS)
def test_out_may_alias_the_input(pattern):
    planes = random_planes((7, 9), np.int32)
    expected = gather_reference(planes, pattern)
    in_place = planes.copy()
    zigzag_scan(in_place, pattern, out=in_place.reshape(-1))
    assert np.array_equal(in_place.reshape(-1), expected)
    zigzag_unscan(in_place.reshape(-1), 7, 9, pattern, out=in_place)
    assert np.array_equal(in_place, planes)


def test_bad_out_buffers_are_refused():
    planes = np.zeros((4, 6), np.uint16)
    with pytest.raises(ValueError, match="shape"):
        zigzag_scan(planes, "diagonal", out=np.empty(25, np.uint16))
    with pytest.raises(ValueError, match="C-contiguous"):
        zigzag_scan(planes, "diagonal", out=np.empty(48, np.uint16)[::2])
    read_only = np.empty(24, np.uint16)
    read_only.flags.writeable = False
    with pytest.raises(ValueError, match="read-only"):
        zigzag_scan(planes, "diagonal", out=read_only)
    with pytest.raises(TypeError, match=r"numpy\.ndarray"):
        zigzag_scan(planes, "diagonal", out=[0] * 24)  # type: ignore[arg-type]


def test_bad_input_shapes_are_refused():
    with pytest.raises(ValueError, match=r"\(\.\.\., H, W\)"):
        zigzag_scan(np.zeros(5), "vertical")
    with pytest.raises(ValueError, match=r"\(\.\.\., H, W, S\)"):
        zigzag_scan(np.zeros((4, 4)), "vertical", channels_last=True)
    with pytest.raises(ValueError, match="at least one row"):
        zigzag_scan(np.zeros((0, 4)), "vertical")
    with pytest.raises(ValueError, match="rows \\* cols = 12"):
        zigzag_unscan(np.zeros(10), 3, 4, "vertical")
    with pytest.raises(ValueError, match="at least 2"):
        zigzag_unscan(np.zeros(12), 3, 4, "vertical", channels_last=True)


@pytest.mark.parametrize("pattern", PATTERNS)
def test_empty_stacks(pattern):
    assert zigzag_scan(np.zeros((0, 3, 4)), pattern).shape == (0, 12)
    assert zigzag_unscan(np.zeros((0, 12)), 3, 4, pattern).shape == (0, 3, 4)


@pytest.mark.parametrize("pattern", PATTERNS)
def test_read_only_memmap_input(tmp_path, pattern):
    planes = random_planes((2, 64, 48), ">u2")
    path = tmp_path / "planes.raw"
    planes.tofile(path)
    mapped = np.memmap(path, dtype=">u2", mode="r", shape=planes.shape)
    sequence = zigzag_scan(mapped, pattern)
    assert type(sequence) is np.ndarray and sequence.dtype == np.dtype(">u2")
    assert np.array_equal(sequence, gather_reference(planes, pattern))
    sequence.tofile(path)
    mapped = np.memmap(path, dtype=">u2", mode="r", shape=sequence.shape)
    assert np.array_equal(zigzag_unscan(mapped, 64, 48, pattern), planes)


@pytest.mark.parametrize("pattern", PATTERNS)
def test_channels_last_non_contiguous_input(pattern):
    # The samples stay contiguous (folded into uint32) while the plane axes are swapped.
    planes = random_planes((9, 7, 4), np.uint8).transpose(1, 0, 2)
    sequence = zigzag_scan(planes, pattern, channels_last=True)
    assert np.array_equal(sequence, gather_reference(planes, pattern, channels_last=True))
    assert np.array_equal(zigzag_unscan(sequence, 7, 9, pattern, channels_last=True), planes)
