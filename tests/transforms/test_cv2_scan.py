"""The OpenCV zigzag kernels against the NumPy reference: equal on every shape, dtype, pattern and layout."""

from __future__ import annotations

import sys

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from deepkedi.transforms import _cv2_scan
from deepkedi.transforms.patterns import ZigzagPattern
from deepkedi.transforms.zigzag import zigzag_scan, zigzag_unscan

pytestmark = pytest.mark.skipif(not _cv2_scan.available(), reason="opencv-python-headless (the 'fast' extra) absent")

DTYPES = ["u1", "i1", "<u2", "<i2", "<u4", "<i4", "<f4", "<f8", "<u8", "?", "<f2", "<c8"]


def _reference(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_cv2_scan, "wanted", lambda nbytes: False)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    dtype=st.sampled_from(DTYPES),
    lead=st.lists(st.integers(1, 3), max_size=2),
    rows=st.integers(1, 40),
    cols=st.integers(1, 40),
    samples=st.sampled_from([None, 1, 2, 3, 4]),
    pattern=st.sampled_from(list(ZigzagPattern)),
    seed=st.integers(0, 2**32 - 1),
)
def test_the_opencv_path_equals_numpy(
    monkeypatch: pytest.MonkeyPatch,
    dtype: str,
    lead: list[int],
    rows: int,
    cols: int,
    samples: int | None,
    pattern: ZigzagPattern,
    seed: int,
) -> None:
    shape = (*lead, rows, cols) + ((samples,) if samples else ())
    nbytes = int(np.prod(shape)) * np.dtype(dtype).itemsize
    # Random bytes, so every word pattern occurs (NaN payloads, subnormals): only bytes may move.
    planes = np.frombuffer(np.random.default_rng(seed).bytes(nbytes), dtype=np.uint8).view(dtype).reshape(shape)
    channels_last = samples is not None
    with monkeypatch.context() as patch:
        patch.setattr(_cv2_scan, "wanted", lambda n: True)
        fast = zigzag_scan(planes, pattern, channels_last=channels_last)
        back = zigzag_unscan(fast, rows, cols, pattern, channels_last=channels_last)
    with monkeypatch.context() as patch:
        _reference(patch)
        reference = zigzag_scan(planes, pattern, channels_last=channels_last)
    assert fast.dtype == reference.dtype and fast.shape == reference.shape
    assert fast.tobytes() == reference.tobytes()
    assert back.tobytes() == planes.tobytes()


@pytest.mark.parametrize("pattern", list(ZigzagPattern))
def test_clinical_sizes_take_the_opencv_path_and_match(pattern: ZigzagPattern, monkeypatch: pytest.MonkeyPatch) -> None:
    """A 512² 16-bit slice is past MIN_BYTES: the kernels run (counted) and give NumPy's words."""
    planes = np.random.default_rng(1).integers(0, 2**16, (2, 512, 512), dtype=np.uint16)
    calls: list[str] = []
    real_scan, real_unscan = _cv2_scan.scan_planes, _cv2_scan.unscan_planes
    monkeypatch.setattr(_cv2_scan, "scan_planes", lambda *a: calls.append("scan") or real_scan(*a))
    monkeypatch.setattr(_cv2_scan, "unscan_planes", lambda *a: calls.append("unscan") or real_unscan(*a))
    fast = zigzag_scan(planes, pattern)
    back = zigzag_unscan(fast, 512, 512, pattern)
    assert calls == ["scan", "unscan"]
    monkeypatch.setattr(_cv2_scan, "wanted", lambda nbytes: False)
    assert fast.tobytes() == zigzag_scan(planes, pattern).tobytes()
    assert np.array_equal(back, planes)


def test_small_planes_in_a_short_process_stay_on_numpy(monkeypatch: pytest.MonkeyPatch) -> None:
    """Loading OpenCV costs more than scanning a small plane: below MIN_BYTES it is not loaded for it."""
    monkeypatch.delitem(sys.modules, "cv2", raising=False)
    assert not _cv2_scan.wanted(_cv2_scan.MIN_BYTES - 1)
    assert _cv2_scan.wanted(_cv2_scan.MIN_BYTES)


@pytest.mark.parametrize(("rows", "cols"), [(512, 512), (37, 1024), (300, 7)])
def test_the_vertical_staging_buffers_keep_no_pixels(rows: int, cols: int) -> None:
    """The transpose goes through per-thread buffers that outlive the call: they are zeroed after it."""
    planes = np.random.default_rng(2).integers(1, 2**16, (2, rows, cols), dtype=np.uint16)
    sequences = np.empty((2, rows * cols), dtype=np.uint16)
    assert _cv2_scan.scan_planes(planes, sequences, ZigzagPattern.VERTICAL)
    back = np.empty_like(planes)
    assert _cv2_scan.unscan_planes(sequences, back, ZigzagPattern.VERTICAL)
    assert np.array_equal(back, planes)
    carrier = np.dtype(np.uint16)
    for shape, slot in (((cols, rows), "first"), ((rows, cols), "first"), ((cols, rows), "second")):
        staged = _cv2_scan._staging(*shape, carrier, slot)
        assert staged.strides[0] % 256 != 0
        assert not staged.any()
